import { Hono } from "hono";
import { queryWholeNumber, z } from "../zod";
import { ok, nowIso } from "../http/envelope";
import { validate } from "../http/validate";
import { LOG_LEVELS } from "../logs/types";

import type { Services } from "../services";

export const MAX_LOG_LIMIT = 1000;

/** Filters of GET /api/logs, all optional. */
export const logsQuerySchema = z.object({
  /** Most verbose level to include: "warn" returns error and warn. */
  level: z.optional(z.enum(LOG_LEVELS, { error: `level must be one of ${LOG_LEVELS.join(", ")}` })),
  /** Exact source ("proxy", "llama-server:<model>") or a prefix ending in "*" or ":". */
  source: z.optional(z.string().check(z.trim(), z.minLength(1), z.maxLength(200))),
  /** Only entries after this time (ISO 8601). */
  since: z.optional(z.iso.datetime({ offset: true, error: "since must be an ISO 8601 date-time, e.g. 2024-12-27T10:00:00Z" })),
  /** Only entries with a greater id (incremental tails). */
  afterId: z.optional(queryWholeNumber("afterId", 0, Number.MAX_SAFE_INTEGER)),
  /** Case-insensitive substring of the message. */
  q: z.optional(z.string().check(z.maxLength(200, "q must be at most 200 characters"))),
  /** Newest N entries after filtering (default 100, at most 1000), returned oldest first. */
  limit: z._default(queryWholeNumber("limit", 1, MAX_LOG_LIMIT), 100),
});

export function logsRoutes(s: Services) {
  return new Hono().get("/", validate("query", logsQuerySchema, "Invalid parameters"), (c) => {
    const query = c.req.valid("query");
    const logs = s.logs.query({ ...query, q: query.q || undefined });
    // LogUpdateResponse of the seed API, plus the sources seen (for filter menus).
    return ok(c, { logs, timestamp: nowIso(), count: logs.length, sources: s.logs.sources() });
  });
}
