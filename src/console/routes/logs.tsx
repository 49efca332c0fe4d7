/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import { z } from "../../zod";
import { validate } from "../../http/validate";
import { LOG_LEVELS } from "../../logs/types";
import type { Services } from "../../services";
import { LogsPage } from "../pages/logs";
import { LogLines, LogView } from "../partials/logs";
import { logsAsText, type LogFilter } from "../data";

const logQuerySchema = z.object({
  level: z.optional(z.union([z.enum(LOG_LEVELS), z.literal("")])),
  source: z.optional(z.string().check(z.maxLength(200))),
  q: z.optional(z.string().check(z.maxLength(200))),
  afterId: z.optional(z.coerce.number().check(z.int(), z.gte(0))),
});

function toFilter(q: z.infer<typeof logQuerySchema>): LogFilter {
  return {
    ...(q.level ? { level: q.level } : {}),
    ...(q.source ? { source: q.source } : {}),
    ...(q.q ? { q: q.q } : {}),
  };
}

/** The logs page, its filtered view, the live tail and the download. */
export function logsRoutes(s: Services) {
  const app = new Hono();
  const LOG_PAGE = 500;
  app.get("/logs", validate("query", logQuerySchema), (c) => {
    const filter = toFilter(c.req.valid("query"));
    return c.html(<LogsPage entries={s.logs.query({ ...filter, limit: LOG_PAGE })} filter={filter} sources={s.logs.sources()} lastId={s.logs.lastId} />);
  });
  app.get("/ui/logs", validate("query", logQuerySchema), (c) => {
    const filter = toFilter(c.req.valid("query"));
    return c.html(<LogView entries={s.logs.query({ ...filter, limit: LOG_PAGE })} filter={filter} lastId={s.logs.lastId} />);
  });
  // New lines after the newest one the tail shows. X-Last-Id tells console.js where it is now,
  // even when none of the new lines matched the filter.
  app.get("/ui/logs/lines", validate("query", logQuerySchema), (c) => {
    const q = c.req.valid("query");
    c.header("X-Last-Id", String(s.logs.lastId));
    return c.html(<LogLines entries={s.logs.query({ ...toFilter(q), afterId: q.afterId ?? 0, limit: LOG_PAGE })} />);
  });
  app.get("/ui/logs/download", validate("query", logQuerySchema), (c) => {
    const text = logsAsText(s.logs.query(toFilter(c.req.valid("query"))));
    c.header("Content-Disposition", `attachment; filename="llama-async-proxy-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.log"`);
    return c.text(text);
  });

  return app;
}
