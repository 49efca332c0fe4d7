import type { ContentfulStatusCode } from "hono/utils/http-status";

/**
 * The error catalogue: every code the proxy answers with, its HTTP status, and how it reads in
 * OpenAI's error shape on /v1 and the native llama-server paths (`type`, and `code` where OpenAI
 * has a conventional one). docs/API.md lists the same table. The first six are the seed API's
 * codes (VALIDATION_ERROR ... SERVICE_UNAVAILABLE); the others name answers the seed did not
 * cover.
 */
export const ERRORS = {
  VALIDATION_ERROR: { status: 400, openAiType: "invalid_request_error", openAiCode: "validation_error" },
  /** A request Hono itself refused with a 4xx that has no code of its own. */
  INVALID_REQUEST: { status: 400, openAiType: "invalid_request_error", openAiCode: "invalid_request" },
  UNAUTHORIZED: { status: 401, openAiType: "authentication_error", openAiCode: "invalid_api_key" },
  FORBIDDEN: { status: 403, openAiType: "permission_error", openAiCode: "forbidden" },
  /** A named API key (src/keys/) asked for a model outside its list. */
  MODEL_NOT_ALLOWED: { status: 403, openAiType: "permission_error", openAiCode: "model_not_allowed" },
  NOT_FOUND: { status: 404, openAiType: "invalid_request_error", openAiCode: "not_found" },
  /** A model named by a /v1 request (or /upstream/:id) that this proxy does not serve. */
  MODEL_NOT_FOUND: { status: 404, openAiType: "invalid_request_error", openAiCode: "model_not_found" },
  CONFLICT: { status: 409, openAiType: "invalid_request_error", openAiCode: "conflict" },
  PAYLOAD_TOO_LARGE: { status: 413, openAiType: "invalid_request_error", openAiCode: "request_too_large" },
  /** /llamaproxws asked for without a WebSocket upgrade. */
  UPGRADE_REQUIRED: { status: 426, openAiType: "invalid_request_error", openAiCode: "upgrade_required" },
  RATE_LIMITED: { status: 429, openAiType: "rate_limit_exceeded", openAiCode: "rate_limit_exceeded" },
  /** Cancelled by an operator (DELETE /api/requests/:id); 499 as for a client that left. */
  REQUEST_CANCELLED: { status: 499, openAiType: "cancelled", openAiCode: "request_cancelled" },
  INTERNAL_ERROR: { status: 500, openAiType: "server_error", openAiCode: "internal_error" },
  /** The model's llama-server did not answer, or broke off its answer. */
  UPSTREAM_UNAVAILABLE: { status: 502, openAiType: "server_error", openAiCode: "upstream_unavailable" },
  /** No peer (src/peers/) could serve a request routed to other hosts. */
  PEER_UNAVAILABLE: { status: 502, openAiType: "server_error", openAiCode: "peer_unavailable" },
  SERVICE_UNAVAILABLE: { status: 503, openAiType: "unavailable_error", openAiCode: "service_unavailable" },
} as const;

export type ErrorCode = keyof typeof ERRORS;
export type ErrorStatus = (typeof ERRORS)[ErrorCode]["status"];

/** The status of each code (the table above, by code). */
export const ERROR_STATUS = Object.fromEntries(Object.entries(ERRORS).map(([code, e]) => [code, e.status])) as {
  [C in ErrorCode]: (typeof ERRORS)[C]["status"];
};

/** The catalogue code for an HTTP status (Hono's own HTTPExceptions carry only a status). */
export function codeForStatus(status: number): ErrorCode | undefined {
  const preferred: Partial<Record<number, ErrorCode>> = { 400: "VALIDATION_ERROR", 404: "NOT_FOUND" };
  if (preferred[status]) return preferred[status];
  return (Object.keys(ERRORS) as ErrorCode[]).find((code) => ERRORS[code].status === status);
}

/**
 * An error that knows how it should be shown to an API client. Thrown anywhere below a route;
 * app.onError turns it into the `{success:false,error:{code,message,details},timestamp}` envelope
 * on /api and into OpenAI's `{error:{message,type,param,code}}` on /v1.
 */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly details?: string;
  /** Extra response headers (e.g. Retry-After for RATE_LIMITED). */
  readonly headers?: Record<string, string>;

  constructor(code: ErrorCode, message: string, details?: string, headers?: Record<string, string>) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.details = details;
    this.headers = headers;
  }

  /** Typed as Hono's status union, which has no 499 (REQUEST_CANCELLED); Responses accept it. */
  get status(): ContentfulStatusCode {
    return ERRORS[this.code].status as ContentfulStatusCode;
  }
}

export const notFound = (message: string, details?: string) => new ApiError("NOT_FOUND", message, details);
export const conflict = (message: string, details?: string) => new ApiError("CONFLICT", message, details);
export const validationError = (message: string, details?: string) =>
  new ApiError("VALIDATION_ERROR", message, details);
export const unavailable = (message: string, details?: string) =>
  new ApiError("SERVICE_UNAVAILABLE", message, details);
