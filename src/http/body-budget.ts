import type { MiddlewareHandler } from "hono";
import { errorResponse } from "./envelope";
import { ApiError } from "./errors";
import { openAiErrorResponse } from "./openai";
import type { ErrorShape } from "./guard";

/** Bodies being read at once, all routes together (documented in README / SECURITY.md). */
export const DEFAULT_MAX_IN_FLIGHT_BODY_BYTES = 256 * 1024 * 1024;

/**
 * A global budget for request bodies in flight. Each route bounds its own body (1 MiB on /api,
 * 100 MiB for inference), but four 90 MB bodies at once took the process to 634 MB RSS (finding
 * 10 of #11). A request reserves its Content-Length (or, when it streams a body without one,
 * the route's own cap: `chunkedReserve`) until its handler has answered; a body bigger than the
 * whole budget is a 413, one that does not fit next to those in flight a 503 with Retry-After.
 */
export class BodyBudget {
  private inFlight = 0;

  constructor(readonly maxBytes: number) {}

  get bytesInFlight(): number {
    return this.inFlight;
  }

  middleware(shapeOf: (path: string) => ErrorShape, chunkedReserve: (path: string) => number): MiddlewareHandler {
    return async (c, next) => {
      const raw = c.req.raw;
      if (raw.body === null || c.req.method === "GET" || c.req.method === "HEAD") return next();
      const length = c.req.header("content-length");
      const declared = length !== undefined && /^\d+$/.test(length) ? Number(length) : chunkedReserve(c.req.path);
      if (declared === 0) return next();
      const answer = (err: ApiError) => (shapeOf(c.req.path) === "openai" ? openAiErrorResponse(err) : errorResponse(err));
      if (declared > this.maxBytes) {
        const message = `Request body too large (the server reads at most ${this.maxBytes} bytes of bodies at once)`;
        return answer(new ApiError("PAYLOAD_TOO_LARGE", "Request body too large", message));
      }
      if (this.inFlight + declared > this.maxBytes) {
        const message = `Too many request bodies in flight (${this.inFlight} of ${this.maxBytes} bytes); retry shortly`;
        return answer(new ApiError("SERVICE_UNAVAILABLE", "Server busy", message, { "Retry-After": "1" }));
      }
      this.inFlight += declared;
      try {
        await next();
      } finally {
        this.inFlight -= declared;
      }
    };
  }
}
