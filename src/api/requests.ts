import { Hono } from "hono";
import { z } from "../zod";
import { REQUEST_ID_RE } from "../activity/record";
import { queueSnapshot } from "../activity/tracker";
import { ok } from "../http/envelope";
import { notFound } from "../http/errors";
import { validate } from "../http/validate";
import type { Services } from "../services";

const listSchema = z.object({ model: z.optional(z.string().check(z.trim(), z.minLength(1), z.maxLength(200, "model must be at most 200 characters"))) });
const idSchema = z.object({ id: z.string().check(z.regex(REQUEST_ID_RE, "id must be a request id (the X-Request-Id of the request)")) });

/** /api/requests: the live queue (src/activity/tracker.ts). */
export function requestRoutes(s: Services) {
  return new Hono()
    .get("/", validate("query", listSchema, "Invalid parameters"), (c) => {
      return ok(c, queueSnapshot(s.tracker.list(c.req.valid("query"))));
    })
    .post("/:id/cancel", validate("param", idSchema, "Invalid request id"), (c) => {
      const { id } = c.req.valid("param");
      if (!s.tracker.cancel(id)) throw notFound("Request not found", `No queued, loading or running request has id "${id}" (it may have finished)`);
      s.log.info(`Request ${id} cancelled from the API`);
      return ok(c, { id, cancelled: true }, { message: "Request cancelled" });
    });
}
