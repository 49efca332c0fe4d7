/** The six error codes of the API reference and the HTTP status each one maps to. */
export const ERROR_STATUS = {
  VALIDATION_ERROR: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
export type ErrorStatus = (typeof ERROR_STATUS)[ErrorCode];

/**
 * An error that knows how it should be shown to an API client. Thrown anywhere below a route;
 * app.onError turns it into the `{success:false,error:{code,message,details},timestamp}` envelope.
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

  get status(): ErrorStatus {
    return ERROR_STATUS[this.code];
  }
}

export const notFound = (message: string, details?: string) => new ApiError("NOT_FOUND", message, details);
export const conflict = (message: string, details?: string) => new ApiError("CONFLICT", message, details);
export const validationError = (message: string, details?: string) =>
  new ApiError("VALIDATION_ERROR", message, details);
export const unavailable = (message: string, details?: string) =>
  new ApiError("SERVICE_UNAVAILABLE", message, details);
