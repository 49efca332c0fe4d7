import { Hono } from "hono";
import { z } from "../zod";
import { ok } from "../http/envelope";
import { ApiError } from "../http/errors";
import { validate } from "../http/validate";
import { modelIdParam } from "../models/schema";
import type { Services } from "../services";

const entryParam = z.extend(modelIdParam, { entry: z.string().check(z.minLength(1), z.maxLength(100, "Cache id is too long")) });

function modelOf(s: Services, id: string) {
  const row = s.registry.get(id);
  if (!row) throw new ApiError("NOT_FOUND", "Model not found", `No model with id "${id}"`);
  return row;
}

/**
 * GET /api/models/:id/kv-cache (the model's saved KV caches), DELETE it (all of them, and the
 * "not restorable" mark) or DELETE .../:entry (one). Mounted at /api/models.
 */
export function kvCacheRoutes(s: Services) {
  return new Hono()
    .get("/:id/kv-cache", validate("param", modelIdParam), (c) => {
      const { id } = c.req.valid("param");
      return ok(c, s.kvcache.view(id, modelOf(s, id)));
    })
    .delete("/:id/kv-cache", validate("param", modelIdParam), (c) => {
      const { id } = c.req.valid("param");
      modelOf(s, id);
      return ok(c, { modelId: id, deleted: s.kvcache.deleteAll(id) }, { message: "Saved KV caches deleted" });
    })
    .delete("/:id/kv-cache/:entry", validate("param", entryParam), (c) => {
      const { id, entry } = c.req.valid("param");
      modelOf(s, id);
      if (!s.kvcache.deleteEntry(id, entry)) throw new ApiError("NOT_FOUND", "Saved KV cache not found", `Model "${id}" has no saved cache "${entry}"`);
      return ok(c, { modelId: id, deleted: 1 }, { message: "Saved KV cache deleted" });
    });
}
