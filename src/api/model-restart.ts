import { Hono } from "hono";
import { ok } from "../http/envelope";
import { notFound } from "../http/errors";
import { validate } from "../http/validate";
import { toApiModel } from "../models/view";
import { modelIdParam } from "../models/schema";
import type { Services } from "../services";

/**
 * POST /api/models/:id/restart: now, draining requests in flight (new ones wait for the new
 * process). For a model whose settings changed; hot reload restarts such models when idle.
 */
export function modelRestartRoutes(s: Services) {
  return new Hono().post("/:id/restart", validate("param", modelIdParam), async (c) => {
    const { id } = c.req.valid("param");
    if (!s.registry.get(id)) throw notFound("Model not found", `No model with id "${id}"`);
    await s.pool.restart(id); // throws ApiError (503 with the reason) when the new start fails
    const row = s.registry.get(id)!;
    return ok(c, toApiModel(row, s.supervisor.runtimeOf(id), s.memory.view(row)), { message: "Model restarted" });
  });
}
