import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ApiError, type ErrorCode } from "./errors";

/** ApiResponse<T> exactly as in the seed API (docs/API.md). */
export interface ApiResponse<T = unknown> {
  success: boolean;
  data?: T;
  message?: string;
  error?: { code: string; message: string; details?: string };
  timestamp: string;
}

let isoMs = -1;
let iso = "";
/**
 * The envelope's timestamp. Formatted once per millisecond, not per response: at tens of
 * thousands of requests a second, toISOString was ~3% of a GET /api/monitoring's CPU and every
 * response within the same millisecond carries the same text anyway.
 */
export function nowIso(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    iso = new Date(ms).toISOString();
  }
  return iso;
}

/** A success envelope. `message` is optional; some seed API endpoints carry one. */
export function ok<T>(c: Context, data: T, opts: { message?: string; status?: ContentfulStatusCode } = {}) {
  const body: { success: true; data: T; message?: string; timestamp: string } = {
    success: true,
    ...(opts.message ? { message: opts.message } : {}),
    data,
    timestamp: nowIso(),
  };
  return c.json(body, opts.status ?? 200);
}

/**
 * ok() for data that is already JSON text: a snapshot serialised once and served many times
 * (GET /api/monitoring). The same bytes and headers as ok(c, data) without serialising `data`
 * again; typed as ok() so the typed client sees the same route.
 */
export function okSerialized<T>(c: Context, dataJson: string): ReturnType<typeof ok<T>> {
  const body = `{"success":true,"data":${dataJson},"timestamp":"${nowIso()}"}`;
  return c.body(body, 200, { "Content-Type": "application/json" }) as unknown as ReturnType<typeof ok<T>>;
}

export function errorBody(code: ErrorCode, message: string, details?: string): ApiResponse<never> {
  return {
    success: false,
    error: { code, message, ...(details !== undefined ? { details } : {}) },
    timestamp: nowIso(),
  };
}

/** An error envelope response built from an ApiError. */
export function fail(c: Context, err: ApiError) {
  if (err.headers) for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
  return c.json(errorBody(err.code, err.message, err.details), err.status);
}

/** The same outside Hono (the realtime entry, the request guard): a plain Response. */
export function errorResponse(err: ApiError): Response {
  return Response.json(errorBody(err.code, err.message, err.details), { status: err.status, headers: err.headers });
}
