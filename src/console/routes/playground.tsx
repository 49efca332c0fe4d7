/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import { z } from "../../zod";
import { validate } from "../../http/validate";
import type { Services } from "../../services";
import { ModelSelect, PlaygroundPage } from "../pages/playground";
import { modelViews } from "../data";

/** The playground page and its model picker (the chat itself goes from the browser to /v1). */
export function playgroundRoutes(s: Services) {
  const app = new Hono();
  app.get("/playground", (c) => c.html(<PlaygroundPage models={modelViews(s)} />));
  app.get("/ui/playground/models", validate("query", z.object({ model: z.optional(z.string().check(z.maxLength(200))) })), (c) =>
    c.html(<ModelSelect models={modelViews(s)} selected={c.req.valid("query").model} />),
  );

  return app;
}
