import { Hono } from "hono";
import { z } from "zod";
import { ok, nowIso } from "../http/envelope";
import { validate } from "../http/validate";
import { LOG_LEVELS } from "../logs/types";

import type { Services } from "../services";

export const MAX_LOG_LIMIT = 1000;

const wholeNumber = (label: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${label} must be a whole number`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${label} must be between ${min} and ${max}`);

/** Filters of GET /api/logs, all optional. */
export const logsQuerySchema = z.object({
  /** Most verbose level to include: "warn" returns error and warn. */
  level: z.enum(LOG_LEVELS, { error: `level must be one of ${LOG_LEVELS.join(", ")}` }).optional(),
  /** Exact source ("proxy", "llama-server:<model>") or a prefix ending in "*" or ":". */
  source: z.string().trim().min(1).max(200).optional(),
  /** Only entries after this time (ISO 8601). */
  since: z.iso.datetime({ offset: true, error: "since must be an ISO 8601 date-time, e.g. 2024-12-27T10:00:00Z" }).optional(),
  /** Only entries with a greater id (incremental tails). */
  afterId: wholeNumber("afterId", 0, Number.MAX_SAFE_INTEGER).optional(),
  /** Case-insensitive substring of the message. */
  q: z.string().max(200, "q must be at most 200 characters").optional(),
  /** Newest N entries after filtering (default 100, at most 1000), returned oldest first. */
  limit: wholeNumber("limit", 1, MAX_LOG_LIMIT).default(100),
});

export function logsRoutes(s: Services) {
  return new Hono().get("/", validate("query", logsQuerySchema, "Invalid parameters"), (c) => {
    const query = c.req.valid("query");
    const logs = s.logs.query({ ...query, q: query.q || undefined });
    // LogUpdateResponse of the seed API, plus the sources seen (for filter menus).
    return ok(c, { logs, timestamp: nowIso(), count: logs.length, sources: s.logs.sources() });
  });
}
