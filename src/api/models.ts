import { Hono } from "hono";
import { z } from "../zod";
import { ok } from "../http/envelope";
import { validate } from "../http/validate";
import { discoverModels, getModel, patchModel, registerModels, removeModel } from "../models/catalog";
import { discoverBodySchema, patchModelSchema, registerBodySchema } from "../models/schema";
import { listModels } from "../models/view";
import type { Services } from "../services";

const idParam = z.object({ id: z.string().check(z.minLength(1), z.maxLength(200)) });

/**
 * /api/models: the registry (list, register, edit, remove) and discovery. Start/stop live in
 * model-control.ts, mounted at the same prefix.
 */
export function modelRoutes(s: Services) {
  return new Hono()
    .get("/", (c) => {
      const models = listModels(s);
      return ok(c, { count: models.length, models });
    })
    .post("/", validate("json", registerBodySchema), async (c) => {
      const result = await registerModels(s, c.req.valid("json").models);
      return ok(c, result, { message: "Models registered successfully" });
    })
    // Before "/:id" routes so "discover" is never taken for an id.
    .post("/discover", validate("json", discoverBodySchema), async (c) => {
      const result = await discoverModels(s, c.req.valid("json"));
      return ok(c, result);
    })
    .get("/:id", validate("param", idParam), (c) => ok(c, getModel(s, c.req.valid("param").id)))
    .patch("/:id", validate("param", idParam), validate("json", patchModelSchema), (c) => {
      const model = patchModel(s, c.req.valid("param").id, c.req.valid("json"));
      return ok(c, model, { message: "Model updated successfully" });
    })
    .delete("/:id", validate("param", idParam), (c) => {
      const result = removeModel(s, c.req.valid("param").id);
      return ok(c, result, { message: "Model removed successfully" });
    });
}
