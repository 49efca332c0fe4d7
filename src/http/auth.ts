import type { MiddlewareHandler } from "hono";
import { timingSafeEqual } from "node:crypto";
import { fail } from "./envelope";
import { ApiError } from "./errors";
import { openAiFail } from "./openai";

/** Reads the key from `Authorization: Bearer <key>`, `X-API-Key`, or (for the console) a cookie. */
export function presentedKey(headers: Headers): string | undefined {
  const auth = headers.get("authorization");
  if (auth?.toLowerCase().startsWith("bearer ")) return auth.slice(7).trim();
  const x = headers.get("x-api-key");
  if (x) return x.trim();
  const cookie = headers.get("cookie")?.match(/(?:^|;\s*)lap_key=([^;]+)/);
  return cookie ? decodeURIComponent(cookie[1]!) : undefined;
}

export function keyMatches(expected: string, given: string | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Requires the API key when one is configured. Whoever can POST /api/config chooses which binary
 * we execute, so a proxy reachable from the network must not be open.
 */
export function requireApiKey(apiKey: string | undefined, style: "envelope" | "openai"): MiddlewareHandler {
  return async (c, next) => {
    if (!apiKey || keyMatches(apiKey, presentedKey(c.req.raw.headers))) return next();
    c.header("WWW-Authenticate", 'Bearer realm="llama-async-proxy"');
    return style === "openai"
      ? openAiFail(c, new ApiError("UNAUTHORIZED", "Invalid or missing API key"))
      : fail(c, new ApiError("UNAUTHORIZED", "Invalid or missing API key", "Send Authorization: Bearer <key> or X-API-Key"));
  };
}
