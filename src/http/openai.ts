import type { ApiError, ErrorCode } from "./errors";

/** The OpenAI error shape that /v1 clients parse (they do not read our envelope). */
export function openAiError(message: string, type: string, code: string | number | null) {
  return { error: { message, type, code } };
}

/** OpenAI's error `type` for each of our error codes. */
export function openAiType(code: ErrorCode): string {
  switch (code) {
    case "RATE_LIMITED": return "rate_limit_exceeded";
    case "NOT_FOUND": return "invalid_request_error";
    case "VALIDATION_ERROR": return "invalid_request_error";
    case "SERVICE_UNAVAILABLE": return "unavailable_error";
    default: return "server_error";
  }
}

/** Client-facing error response for /v1 and native routes (OpenAI shape). */
export function openAiErrorResponse(err: ApiError): Response {
  const code = err.code === "NOT_FOUND" ? "model_not_found" : err.code.toLowerCase();
  const message = err.details ? `${err.message}: ${err.details}` : err.message;
  return Response.json(openAiError(message, openAiType(err.code), code), { status: err.status, headers: err.headers });
}
