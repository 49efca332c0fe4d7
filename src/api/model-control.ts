import { Hono } from "hono";
import { z } from "../zod";
import { ok } from "../http/envelope";
import { ApiError } from "../http/errors";
import { validate } from "../http/validate";
import { toApiModel } from "../models/view";
import { startOnPeer } from "../peers/remote-start";
import { modelIdParam } from "../models/schema";
import type { Services } from "../services";

const startQuery = z.object({
  wait: z.optional(z.enum(["true", "false", "1", "0"], { error: "wait must be true or false" })),
});

/** A whole number in a query string, within [min, max]. */
const queryInt = (label: string, min: number, max: number) =>
  z
    .pipe(z.string().check(z.trim(), z.regex(/^-?\d{1,10}$/, `${label} must be a whole number`)), z.transform(Number))
    .check(z.refine((n) => n >= min && n <= max, `${label} must be between ${min} and ${max}`));
const fitQuery = z.strictObject({
  ctxSize: z.optional(queryInt("ctxSize", 0, 4_194_304)),
  gpuLayers: z.optional(queryInt("gpuLayers", -1, 100_000)),
});

/** The model as the API shows it right now (registry row + live runtime). */
function currentModel(s: Services, id: string) {
  const row = s.registry.get(id);
  if (!row) throw new ApiError("NOT_FOUND", "Model not found", `No model with id "${id}"`);
  return toApiModel(row, s.supervisor.runtimeOf(id), s.memory.view(row));
}

/**
 * POST /api/models/:id/start and /stop. Mounted at /api/models beside the registry routes
 * (src/api/models.ts), which own GET/POST/DELETE /api/models.
 */
export function modelControlRoutes(s: Services) {
  return new Hono()
    .post("/:id/start", validate("param", modelIdParam), validate("query", startQuery), async (c) => {
      const { id } = c.req.valid("param");
      const { wait } = c.req.valid("query");
      const noWait = wait === "false" || wait === "0";
      if (!s.registry.get(id)) {
        // Not ours: another instance of this product may run it (it is started there).
        const remote = await startOnPeer(s, id, !noWait);
        if (remote) return ok(c, remote.data, { status: remote.status, message: remote.message });
      }
      currentModel(s, id); // 404 before anything starts
      if (noWait) {
        // The outcome shows up in the model's status (and the log); nobody awaits this promise.
        // Through the pool, so maxLoadedModels applies as it does for proxied requests.
        s.pool.start(id).catch(() => {});
        return ok(c, currentModel(s, id), { status: 202, message: "Model start requested" });
      }
      await s.pool.start(id); // throws ApiError (503 with the reason and log tail) on failure
      return ok(c, currentModel(s, id), { message: "Model started" });
    })
    // Whether, where and at what cost it would start now, with these settings (nothing starts).
    .get("/:id/fit", validate("param", modelIdParam), validate("query", fitQuery), async (c) => {
      const { id } = c.req.valid("param");
      currentModel(s, id);
      return ok(c, await s.pool.fit(id, c.req.valid("query")));
    })
    .post("/:id/stop", validate("param", modelIdParam), async (c) => {
      const { id } = c.req.valid("param");
      currentModel(s, id);
      await s.pool.stop(id); // idempotent; also cancels a start still waiting for room
      return ok(c, currentModel(s, id), { message: "Model stopped" });
    });
}
