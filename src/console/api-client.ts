import type { Context } from "hono";
import type { ApiResponse } from "../http/envelope";

/** How the console reaches the JSON API: the app's own fetch, in process (no network hop). */
export type AppFetch = (req: Request) => Response | Promise<Response>;

export interface ApiResult<T> {
  status: number;
  ok: boolean;
  data?: T;
  /** "message: details" of an error envelope, for showing next to the form that caused it. */
  error?: string;
  code?: string;
}

/**
 * Calls one /api endpoint in process, as the browser's user: the console's forms then get the
 * JSON API's own validation, conflict checks and error messages, with no second copy of them.
 * The caller's credentials (cookie / Authorization) are forwarded, so an API key still applies.
 */
export async function callApi<T>(fetch: AppFetch, c: Context, method: string, path: string, body?: unknown): Promise<ApiResult<T>> {
  const headers = new Headers({ accept: "application/json" });
  for (const h of ["cookie", "authorization", "x-api-key"]) {
    const v = c.req.header(h);
    if (v) headers.set(h, v);
  }
  // Every non-GET call says JSON, bodiless ones too: the request guard requires it (rule 4).
  if (body !== undefined || method !== "GET") headers.set("content-type", "application/json");
  let res: Response;
  try {
    res = await fetch(new Request(new URL(path, c.req.url), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }));
  } catch (err) {
    return { status: 500, ok: false, error: (err as Error).message, code: "INTERNAL_ERROR" };
  }
  const json = (await res.json().catch(() => null)) as ApiResponse<T> | null;
  if (json && json.success) return { status: res.status, ok: true, data: json.data as T };
  const e = json?.error;
  const error = e ? (e.details && e.details !== e.message ? `${e.message}: ${e.details}` : e.message) : `HTTP ${res.status}`;
  return { status: res.status, ok: false, error, code: e?.code };
}
