import { Hono } from "hono";
import { configUpdateSchema } from "../config/schema";
import { ok } from "../http/envelope";
import { ApiError } from "../http/errors";
import { validate } from "../http/validate";
import type { Services } from "../services";

export function configRoutes(s: Services) {
  return new Hono()
    .get("/", (c) => ok(c, s.config.get()))
    .post("/", validate("json", configUpdateSchema, "Invalid configuration data"), (c) => {
      let saved;
      try {
        saved = s.config.update(c.req.valid("json"));
      } catch (err) {
        s.log.error("Saving the configuration failed", { error: (err as Error).message });
        throw new ApiError("INTERNAL_ERROR", "Configuration save failed", (err as Error).message);
      }
      return ok(c, saved, { message: "Configuration updated successfully" });
    });
}
