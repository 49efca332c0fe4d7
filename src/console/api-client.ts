import type { Context } from "hono";
import { ApiClientError, ApiService, type FetchLike } from "../client";
import type { FieldErrors } from "./forms";

/** How the console reaches the JSON API: the app's own fetch, in process (no network hop). */
export type AppFetch = FetchLike;

/** The caller's credentials: forwarded, so an API key (or the login cookie) still applies. */
const FORWARDED = ["cookie", "authorization", "x-api-key"] as const;

/**
 * The typed client (src/client.ts) calling /api in process as this request's user: the
 * console's forms then get the JSON API's own validation, conflict checks and error messages,
 * with no second copy of them, and the route types decide what goes in and comes back.
 */
export function apiFor(c: Context, fetch: AppFetch): ApiService {
  const headers: Record<string, string> = {};
  for (const h of FORWARDED) {
    const v = c.req.header(h);
    if (v) headers[h] = v;
  }
  return new ApiService(new URL(c.req.url).origin, { fetch, headers });
}

/** A call's outcome as the console shows it: the data, or the error text for the form that caused it. */
export type ApiOutcome<T> = { ok: true; data: T } | { ok: false; status: number; code: string; error: string; details?: string };

/** "message: details" of an error envelope (details alone add nothing when they repeat the message). */
export function apiErrorText(err: ApiClientError): string {
  // A non-envelope answer's details are a slice of whatever body came back (HTML, text): not for users.
  if (err.code === "INVALID_RESPONSE") return err.message;
  return err.details && err.details !== err.message ? `${err.message}: ${err.details}` : err.message;
}

/** Awaits one client call; an ApiClientError (or a failed fetch) becomes an outcome, not a throw. */
export async function attempt<T>(call: Promise<T>): Promise<ApiOutcome<T>> {
  try {
    return { ok: true, data: await call };
  } catch (err) {
    if (err instanceof ApiClientError) return { ok: false, status: err.status, code: err.code, error: apiErrorText(err), details: err.details };
    return { ok: false, status: 500, code: "INTERNAL_ERROR", error: (err as Error).message };
  }
}

/**
 * A VALIDATION_ERROR's details ("field: message; other: message", as describeIssues writes them)
 * as one message per form field, for the fields the form has; a part naming no such field goes
 * to "_form". Null when no part names a field (the caller then shows the whole error).
 */
export function fieldErrorsOfDetails(details: string | undefined, fields: readonly string[]): FieldErrors | null {
  if (!details) return null;
  const errors: FieldErrors = {};
  let named = false;
  for (const part of details.split("; ")) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*): (.+)$/s.exec(part);
    if (m && fields.includes(m[1]!)) {
      errors[m[1]!] ??= m[2]!;
      named = true;
    } else errors._form = errors._form ? `${errors._form}; ${part}` : part;
  }
  return named ? errors : null;
}
