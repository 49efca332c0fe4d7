/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import { z } from "../../zod";
import { validate } from "../../http/validate";
import { MonitoringPage } from "../pages/monitoring";
import { Charts, RANGES, type RangeKey } from "../partials/charts";
import { apiFor, attempt, type AppFetch } from "../api-client";

const rangeSchema = z.object({ range: z.optional(z.enum(Object.keys(RANGES) as [RangeKey, ...RangeKey[]])) });

/** The monitoring page and its charts fragment, drawn from GET /api/monitoring/history. */
export function monitoringRoutes(deps: { fetch: AppFetch }) {
  const app = new Hono();
  const history = async (c: Context, range: RangeKey) => {
    const r = RANGES[range];
    const res = await attempt(apiFor(c, deps.fetch).getMetricsHistory(r.hours, r.resolution));
    return res.ok ? { history: res.data } : { error: res.error };
  };
  app.get("/monitoring", validate("query", rangeSchema), async (c) => {
    const range = c.req.valid("query").range ?? "1h";
    return c.html(<MonitoringPage range={range} {...await history(c, range)} />);
  });
  app.get("/ui/monitoring/charts", validate("query", rangeSchema), async (c) => {
    const range = c.req.valid("query").range ?? "1h";
    return c.html(<Charts range={range} {...await history(c, range)} />);
  });

  return app;
}
