import type { MiddlewareHandler } from "hono";
import { parse as parseCookies } from "hono/utils/cookie";
import { randomToken, sha256, timingSafeEqual } from "../crypto";
import { fail } from "./envelope";
import { ApiError } from "./errors";
import { openAiFail } from "./openai";
import { findKey, type NamedKey } from "../keys/keys";

/** Who a request on an inference route is: the admin key, a console session, or a named key. */
export interface Identity {
  /** "admin" for --api-key and console sessions, the key's name otherwise; null without auth. */
  name: string | null;
  scope: "admin" | "inference";
  /** The named key, when one was used (its models and limits apply). */
  key?: NamedKey;
}

/** The console's session cookie: a random token, never the key itself. */
export const SESSION_COOKIE = "lap_session";
/** How long a console login lasts (absolute, not sliding): a stolen cookie stops working. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** Sessions kept at once; the oldest is dropped beyond it (each login makes one). */
const MAX_SESSIONS = 1000;
/** Longest credential we look at: anything longer is simply wrong (and never hashed at length). */
const MAX_CREDENTIAL_CHARS = 4096;

/**
 * Constant-time comparison whatever the lengths: both sides are hashed to a fixed-length digest
 * first, so neither the time nor an early length check says how long the key is.
 */
export function secretsEqual(expected: string, given: string | undefined | null): boolean {
  if (typeof given !== "string" || given.length === 0 || given.length > MAX_CREDENTIAL_CHARS) return false;
  const a = sha256(expected);
  const b = sha256(given);
  return timingSafeEqual(a, b);
}

/** Credentials a request presents: a key (Authorization: Bearer, X-API-Key) and/or a session cookie. */
export interface Presented {
  key?: string;
  session?: string;
}

/**
 * Reads credentials without ever throwing: a malformed cookie (`lap_session=%`), an empty bearer or
 * a header of another scheme is simply "no credential", answered 401 like a missing one.
 */
export function presentedCredentials(headers: Headers): Presented {
  const out: Presented = {};
  const auth = headers.get("authorization");
  if (auth && /^bearer\s+/i.test(auth)) {
    const key = auth.replace(/^bearer\s+/i, "").trim();
    if (key) out.key = key;
  }
  if (!out.key) {
    const x = headers.get("x-api-key")?.trim();
    if (x) out.key = x;
  }
  const cookie = headers.get("cookie");
  if (cookie && cookie.length <= 16 * 1024) {
    // hono's parser decodes with a try (a bare "%" stays as it is) and skips invalid pairs.
    const session = parseCookies(cookie, SESSION_COOKIE)[SESSION_COOKIE];
    if (session) out.session = session;
  }
  return out;
}

/**
 * The one owner of "who may call us": the configured API key and the console's login sessions.
 * With no key configured everything is open (loopback only, enforced by the CLI).
 */
export class Authenticator {
  /** token -> expiry (ms). Insertion order = age, for dropping the oldest. */
  private readonly sessions = new Map<string, number>();

  constructor(
    private readonly apiKey: string | undefined,
    private readonly now: () => number = Date.now,
    /** Named keys (config file `keys`, src/keys/keys.ts), read per check so a reload applies at once. */
    private readonly namedKeys: () => readonly NamedKey[] = () => [],
  ) {}

  get required(): boolean {
    return this.apiKey !== undefined || this.namedKeys().length > 0;
  }

  /** An admin key given directly (login form, ?key= on the socket): --api-key or a named admin key. */
  keyMatches(given: string | undefined | null): boolean {
    if (this.apiKey !== undefined && secretsEqual(this.apiKey, given)) return true;
    return findKey(this.namedKeys(), given ?? undefined)?.scope === "admin";
  }

  /**
   * For /v1 and the native inference routes: admin credentials, or any named key (inference keys
   * included; their model globs and limits are checked by the proxy once it knows the model).
   * Null: refuse with 401.
   */
  identify(p: Presented): Identity | null {
    if (!this.required) return { name: null, scope: "admin" };
    if (this.apiKey !== undefined && secretsEqual(this.apiKey, p.key)) return { name: "admin", scope: "admin" };
    const named = findKey(this.namedKeys(), p.key);
    if (named) return { name: named.name, scope: named.scope, key: named };
    if (this.sessionValid(p.session)) return { name: "admin", scope: "admin" };
    return null;
  }

  sessionValid(token: string | undefined): boolean {
    if (!token || token.length > 128) return false;
    const expires = this.sessions.get(token);
    if (expires === undefined) return false;
    if (expires <= this.now()) {
      this.sessions.delete(token);
      return false;
    }
    return true;
  }

  /** True when the request may pass: no key configured, the key, or a live console session. */
  allows(p: Presented): boolean {
    if (!this.required) return true;
    return this.keyMatches(p.key) || this.sessionValid(p.session);
  }

  allowsRequest(headers: Headers): boolean {
    return this.allows(presentedCredentials(headers));
  }

  /** A new console session; its token goes into the HttpOnly cookie. */
  createSession(): { token: string; expiresAt: number } {
    const now = this.now();
    for (const [t, exp] of this.sessions) if (exp <= now) this.sessions.delete(t);
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const token = randomToken(32);
    const expiresAt = now + SESSION_TTL_MS;
    this.sessions.set(token, expiresAt);
    return { token, expiresAt };
  }

  endSession(token: string | undefined): void {
    if (token) this.sessions.delete(token);
  }
}

/**
 * Requires the API key (or a console session) when one is configured. Whoever can POST
 * /api/config chooses which binary we execute, so a proxy reachable from the network must not be
 * open.
 */
export function requireAuth(auth: Authenticator, style: "envelope" | "openai" | "ollama"): MiddlewareHandler {
  return async (c, next) => {
    if (auth.allowsRequest(c.req.raw.headers)) return next();
    c.header("WWW-Authenticate", 'Bearer realm="llama-async-proxy"');
    if (style === "openai") return openAiFail(c, new ApiError("UNAUTHORIZED", "Invalid or missing API key"));
    // Ollama clients read `error` as a string (ollama-js shows it as the message).
    if (style === "ollama") return c.json({ error: "unauthorized: invalid or missing API key (send Authorization: Bearer <key>)" }, 401);
    return fail(c, new ApiError("UNAUTHORIZED", "Invalid or missing API key", "Send Authorization: Bearer <key> or X-API-Key"));
  };
}

/**
 * Failed logins per client address: `limit` failures within `windowMs` lock that address out
 * until the oldest failure leaves the window. Bounded: at most `maxClients` addresses tracked.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();

  constructor(readonly limit = 5, readonly windowMs = 60_000, private readonly maxClients = 10_000, private readonly now: () => number = Date.now) {}

  private recent(address: string): number[] {
    const cutoff = this.now() - this.windowMs;
    const list = (this.failures.get(address) ?? []).filter((t) => t > cutoff);
    if (list.length) this.failures.set(address, list);
    else this.failures.delete(address);
    return list;
  }

  /** Seconds until this address may try again; 0 = it may try now. */
  retryAfterSeconds(address: string): number {
    const list = this.recent(address);
    if (list.length < this.limit) return 0;
    return Math.max(1, Math.ceil((list[0]! + this.windowMs - this.now()) / 1000));
  }

  fail(address: string): void {
    const list = this.recent(address);
    list.push(this.now());
    this.failures.delete(address);
    this.failures.set(address, list);
    while (this.failures.size > this.maxClients) this.failures.delete(this.failures.keys().next().value!);
  }

  succeed(address: string): void {
    this.failures.delete(address);
  }
}

/**
 * Where a login may send the browser afterwards: a path on this server only. Refuses
 * scheme-relative (`//evil`), backslash tricks (`/\evil`, which browsers read as `//`), schemes,
 * and control characters.
 */
export function safeNextPath(next: unknown): string {
  if (typeof next !== "string" || !next.startsWith("/") || next.length > 2000) return "/";
  if (/[\\\x00-\x1f\x7f]/.test(next) || next.startsWith("//")) return "/";
  let url: URL;
  try {
    url = new URL(next, "http://same.invalid");
  } catch {
    return "/";
  }
  if (url.origin !== "http://same.invalid") return "/";
  return url.pathname + url.search + url.hash;
}
