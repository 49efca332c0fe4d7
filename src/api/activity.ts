import { Hono } from "hono";
import { stream } from "hono/streaming";
import { queryWholeNumber, z } from "../zod";
import type { ActivityEntry, ActivityFilter } from "../activity/log";
import { REQUEST_ID_RE } from "../activity/record";
import { ok } from "../http/envelope";
import { notFound } from "../http/errors";
import { validate } from "../http/validate";
import type { Services } from "../services";

export const MAX_ACTIVITY_LIMIT = 500;

const isoDateTime = z.iso.datetime({ offset: true });

/** ISO 8601 or Unix epoch milliseconds -> epoch ms. */
const instant = (label: string) =>
  z.pipe(
    z.string().check(z.maxLength(40, `${label} must be an ISO 8601 date-time or epoch milliseconds`)),
    z.transform((v: string, ctx) => {
      const n = /^\d{1,15}$/.test(v) ? Number(v) : isoDateTime.safeParse(v).success ? Date.parse(v) : NaN;
      if (!Number.isFinite(n)) {
        // mini's transform context has no addIssue (classic's pushed this same custom issue).
        ctx.issues.push({ code: "custom", message: `${label} must be an ISO 8601 date-time (2026-01-31T10:00:00Z) or epoch milliseconds`, input: v });
        return z.NEVER;
      }
      return n;
    }),
  );

const filterShape = {
  model: z.optional(z.string().check(z.trim(), z.minLength(1), z.maxLength(200, "model must be at most 200 characters"))),
  key: z.optional(z.string().check(z.trim(), z.minLength(1), z.maxLength(100, "key must be at most 100 characters"))),
  status: z.optional(
    z.pipe(
      z.string().check(z.regex(/^(\d{3}|[1-5]xx|error)$/, "status must be a status code (200), a class (4xx) or error")),
      z.transform((v: string) => (/^\d{3}$/.test(v) ? Number(v) : (v as Exclude<ActivityFilter["status"], number | undefined>))),
    ),
  ),
  since: z.optional(instant("since")),
  until: z.optional(instant("until")),
};

export const activityQuerySchema = z.object({
  ...filterShape,
  limit: z._default(queryWholeNumber("limit", 1, MAX_ACTIVITY_LIMIT), 50),
  /** nextCursor of the previous page. */
  cursor: z.optional(z.pipe(z.string().check(z.regex(/^\d{1,15}$/, "cursor must be the nextCursor of a previous page")), z.transform(Number))),
});

export const activityExportSchema = z.object({
  ...filterShape,
  format: z._default(z.enum(["csv", "ndjson"], { error: "format must be csv or ndjson" }), "ndjson"),
});

export const activitySummarySchema = z.object({ hours: z._default(queryWholeNumber("hours", 1, 24 * 366), 24) });

const captureIdSchema = z.object({ id: z.string().check(z.regex(REQUEST_ID_RE, "id must be a request id (the requestId of an activity row)")) });

const CSV_COLUMNS: (keyof ActivityEntry)[] = [
  "time", "requestId", "model", "route", "status", "client", "keyName", "sessionId", "streaming",
  "promptTokens", "cachedTokens", "completionTokens", "queuedMs", "loadingMs", "ttftMs", "promptTps", "genTps", "durationMs", "error", "rewritten",
];

/** RFC 4180 field: quoted when it holds a comma, quote or line break. A leading =+-@ is prefixed so spreadsheets do not run it. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return "";
  let s = Array.isArray(v) ? v.join(" ") : String(v);
  if (/^[=+\-@\t\r]/.test(s) && typeof v === "string") s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** /api/activity: the activity log (src/activity/log.ts). */
export function activityRoutes(s: Services) {
  return new Hono()
    .get("/", validate("query", activityQuerySchema, "Invalid parameters"), (c) => {
      const { limit, cursor, ...filter } = c.req.valid("query");
      return ok(c, s.activity.query(filter, limit, cursor));
    })
    .get("/summary", validate("query", activitySummarySchema, "Invalid parameters"), (c) => {
      const { hours } = c.req.valid("query");
      const since = Date.now() - hours * 3_600_000;
      return ok(c, { hours, since: new Date(since).toISOString(), ...s.activity.summary(since) });
    })
    .get("/export", validate("query", activityExportSchema, "Invalid parameters"), (c) => {
      const { format, ...filter } = c.req.valid("query");
      c.header("content-type", format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson");
      c.header("content-disposition", `attachment; filename="activity.${format === "csv" ? "csv" : "ndjson"}"`);
      // One page of rows at a time: an export of the whole log never sits in memory.
      return stream(c, async (out) => {
        if (format === "csv") await out.write(CSV_COLUMNS.join(",") + "\n");
        for (const page of s.activity.pages(filter)) {
          if (out.aborted) return;
          const text = format === "csv"
            ? page.map((e) => CSV_COLUMNS.map((k) => csvField(e[k])).join(",")).join("\n") + "\n"
            : page.map((e) => JSON.stringify(e)).join("\n") + "\n";
          await out.write(text);
        }
      });
    })
    .get("/:id/capture", validate("param", captureIdSchema, "Invalid request id"), (c) => {
      const { id } = c.req.valid("param");
      const capture = s.captures.get(id);
      if (!capture) {
        throw notFound(
          "No capture for this request",
          s.captures.enabled
            ? `No request with id "${id}" is captured: it was never proxied, or evicted to keep captures under captureMaxMB`
            : "Captures are off: set captureMaxMB (the memory bound in MB) above 0",
        );
      }
      return ok(c, capture);
    });
}
