import type { ErrorCode } from "./errors";

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
