import { Hono } from "hono";
import { configUpdateSchema } from "../config/schema";
import { ok } from "../http/envelope";
import { ApiError } from "../http/errors";
import { validate } from "../http/validate";
import { serverPathChangeRefusal } from "../supervisor/binary";
import type { Services } from "../services";

export function configRoutes(s: Services) {
  return new Hono()
    .get("/", (c) => ok(c, s.config.get()))
    .post("/", validate("json", configUpdateSchema, "Invalid configuration data"), async (c) => {
      const update = c.req.valid("json");
      // serverPath decides what we execute: it must be a llama-server (nothing is saved otherwise).
      const refusal = await serverPathChangeRefusal(s.config.get().serverPath, update.serverPath);
      if (refusal) throw new ApiError("VALIDATION_ERROR", "Invalid configuration data", `serverPath: ${refusal}`);
      let saved;
      try {
        saved = s.config.update(update);
      } catch (err) {
        s.log.error("Saving the configuration failed", { error: (err as Error).message });
        throw new ApiError("INTERNAL_ERROR", "Configuration save failed", (err as Error).message);
      }
      return ok(c, saved, { message: "Configuration updated successfully" });
    });
}
