import type { Context } from "hono";
import { ApiError, ERRORS, type ErrorCode } from "./errors";

// OpenAI's error shape, the one way every /v1 and native llama-server path answers an error:
// {"error": {"message", "type", "param", "code"}} as the openai client's ErrorObject declares it
// (code: string | null). Type and code come from the error catalogue (errors.ts); the message
// carries the details after a colon (OpenAI clients show only `message`).

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** The OpenAI-shaped body of an ApiError. */
export function openAiErrorBody(err: ApiError): OpenAiErrorBody {
  const entry = ERRORS[err.code];
  const message = err.details ? `${err.message}: ${err.details}` : err.message;
  return { error: { message, type: entry.openAiType, param: null, code: entry.openAiCode } };
}

/** The OpenAI-shaped response of an ApiError (its status and headers, e.g. Retry-After). */
export function openAiErrorResponse(err: ApiError): Response {
  return Response.json(openAiErrorBody(err), { status: err.status, headers: err.headers });
}

/** The same through Hono's context (headers set on `c` are kept), as envelope.ts's fail(). */
export function openAiFail(c: Context, err: ApiError) {
  if (err.headers) for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
  return c.json(openAiErrorBody(err), err.status);
}

/** Shorthand for an ApiError of a code, message and details. */
export const apiError = (code: ErrorCode, message: string, details?: string) => new ApiError(code, message, details);

/**
 * The SSE error event for a stream whose 200 headers are already sent: the same body as a
 * `data:` event (OpenAI clients and llama-server's web UI parse `data:` events with an `error`).
 */
export function sseErrorEvent(err: ApiError): string {
  return `data: ${JSON.stringify(openAiErrorBody(err))}\n\n`;
}
