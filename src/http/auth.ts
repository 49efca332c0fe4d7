import type { MiddlewareHandler } from "hono";
import { timingSafeEqual } from "node:crypto";
import { errorBody } from "./envelope";

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
export function requireApiKey(apiKey: string | undefined, style: "envelope" | "openai" | "ollama"): MiddlewareHandler {
  return async (c, next) => {
    if (!apiKey || keyMatches(apiKey, presentedKey(c.req.raw.headers))) return next();
    c.header("WWW-Authenticate", 'Bearer realm="llama-async-proxy"');
    if (style === "openai") return c.json({ error: { message: "Invalid or missing API key", type: "authentication_error", code: "invalid_api_key" } }, 401);
    // Ollama clients read `error` as a string (ollama-js shows it as the message).
    if (style === "ollama") return c.json({ error: "unauthorized: invalid or missing API key (send Authorization: Bearer <key>)" }, 401);
    return c.json(errorBody("UNAUTHORIZED", "Invalid or missing API key", "Send Authorization: Bearer <key> or X-API-Key"), 401);
  };
}
