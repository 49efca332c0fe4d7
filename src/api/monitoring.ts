import { Hono } from "hono";
import { z } from "../zod";
import { ok, okSerialized } from "../http/envelope";
import { unavailable } from "../http/errors";
import { validate } from "../http/validate";
import { RESOLUTIONS, type Resolution } from "../metrics/history";
import type { SystemMetrics } from "../metrics/types";
import type { Services } from "../services";

/** Query of GET /api/monitoring/history: `hours` 1..168 (default 24), `resolution` (default 5m). */
export const historyQuerySchema = z.object({
  hours: z.pipe(
    z.optional(z.string()),
    z.transform((v: string | undefined, ctx) => {
      if (v === undefined) return 24;
      const n = Number(v);
      if (!/^\d+$/.test(v.trim()) || n < 1 || n > 168) {
        // mini's transform context has no addIssue (classic's pushed this same custom issue).
        ctx.issues.push({ code: "custom", message: "hours must be a whole number between 1 and 168", input: v });
        return z.NEVER;
      }
      return n;
    }),
  ),
  resolution: z._default(
    z.enum(Object.keys(RESOLUTIONS) as [Resolution, ...Resolution[]], { error: "resolution must be one of 1m, 5m, 15m, 1h" }),
    "5m",
  ),
});

export function monitoringRoutes(s: Services) {
  return new Hono()
    .get("/", async (c) => {
      const json = await s.collector.currentJson();
      if (!json) throw unavailable("Monitoring service unavailable", "No metrics sample could be taken");
      return okSerialized<SystemMetrics>(c, json);
    })
    .get("/history", validate("query", historyQuerySchema, "Invalid parameters"), (c) => {
      const { hours, resolution } = c.req.valid("query");
      try {
        return ok(c, s.collector.history.query(hours, resolution));
      } catch (err) {
        s.log.warn(`Metric history query failed: ${(err as Error).message}`);
        throw unavailable("Monitoring service unavailable", "The metric history could not be read");
      }
    });
}
