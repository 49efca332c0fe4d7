import type { MiddlewareHandler } from "hono";
import { networkInterfaces } from "node:os";
import { errorResponse } from "./envelope";
import { ApiError } from "./errors";
import { openAiErrorResponse } from "./openai";

/**
 * The request guard: the first thing every request meets, on every route (the JSON API, /v1 and
 * the llama-server native paths, /upstream, /metrics, the console and its static files, and the
 * realtime socket /llamaproxws, which server.ts checks before the hub). Routes added later get it
 * by being mounted on the same app. What it enforces, in order:
 *
 * 1. Host allow-list (DNS rebinding). A page on evil.example that re-resolves its own name to
 *    127.0.0.1 makes the victim's browser talk to us with `Host: evil.example`; the browser then
 *    treats our answers as same-origin to the attacker. So the Host must be a loopback name or
 *    address (localhost, 127.0.0.0/8, ::1), the address we are bound to (every interface address
 *    when bound to 0.0.0.0 / ::), or a name given with --allowed-hosts / ALLOWED_HOSTS (an entry
 *    "name:port" also pins the port). Anything else: 403.
 * 2. Origin. When a browser sends one, its host must pass the same allow-list (never compared with
 *    the request's own Host, which is what made rebinding work), and for loopback / bound names its
 *    port must be the port we serve on (another local web app on another port is another origin).
 *    Names from --allowed-hosts match on any port (reverse proxies change it) unless pinned.
 *    `Origin: null` (sandboxed iframes, file://, some redirects) is refused: it names nobody.
 * 3. Fetch Metadata. `Sec-Fetch-Site: cross-site` or `same-site` is refused unless the Origin
 *    passed (2) or it is a top-level GET navigation (a link to the console from elsewhere). This
 *    stops what Origin cannot: no-cors GETs that send no Origin, e.g. an <img> opening Engine.IO
 *    polling sessions, and form or no-cors POSTs from another site.
 * 4. Content type. Every POST/PUT/PATCH/DELETE outside the console's form routes (/ui/*, /login,
 *    /logout) and the socket must say `Content-Type: application/json` (or `+json`), empty bodies
 *    included. A cross-site page can only send text/plain, form or multipart bodies without a CORS
 *    preflight, and we answer no preflight, so this makes every state-changing or inference
 *    request impossible to forge from a browser.
 * 5. Console forms. Their POSTs (urlencoded) must come from our own pages: `Sec-Fetch-Site:
 *    same-origin` or an Origin that passed (2). Requests carrying neither (a script, curl) are
 *    refused too: the console is for browsers; scripts use the JSON API.
 *
 * Clients that send no Origin and no Sec-Fetch-* (curl, the openai client, SDKs, socket.io-client
 * in Node) meet only (1) and (4). Decisions are a pure function of the request and the policy
 * (checkRequest), tested as a table; the middleware only renders the refusal in the route's shape.
 */

export interface GuardPolicy {
  /** --allowed-hosts entries: "name" or "name:port" (IPv6 as "[::1]:3000"). */
  allowedHosts: readonly string[];
  /** The address we bind to (options.host). */
  boundHost: string;
  /** The port we serve on; 0 = unknown (app.request() in tests): the Origin port is then not checked. */
  port(): number;
  /** Exact browser origins allowed besides our own ("*" = any origin except null). */
  allowedOrigins?: readonly string[];
}

export type RefusalReason = "host" | "origin" | "cross-site" | "content-type" | "form-origin";

export interface Refusal {
  status: 400 | 403;
  reason: RefusalReason;
  message: string;
  details: string;
}

const LOOPBACK_NAMES = new Set(["localhost", "::1", "0:0:0:0:0:0:0:1"]);
const WILDCARDS = new Set(["0.0.0.0", "::", "[::]", ""]);
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const JSON_TYPE = /^application\/([\w.+-]+\+)?json\s*(;|$)/i;
/** The console's HTML form routes (urlencoded bodies, checked by rule 5 instead of rule 4). */
export const FORM_PATHS = ["/ui/", "/login", "/logout"] as const;
export const SOCKET_PATH = "/llamaproxws";

const isFormPath = (p: string) => FORM_PATHS.some((f) => (f.endsWith("/") ? p.startsWith(f) : p === f));
const isSocketPath = (p: string) => p === SOCKET_PATH || p.startsWith(SOCKET_PATH + "/");

/** Lower case, no brackets, no trailing dot: how names are compared. */
export function normalizeHostname(name: string): string {
  let h = name.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

export function isLoopbackHostname(name: string): boolean {
  const h = normalizeHostname(name);
  if (LOOPBACK_NAMES.has(h)) return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  return /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Splits "name", "name:port", "[v6]:port" (a Host header or an allow-list entry). */
export function splitHostPort(value: string): { hostname: string; port?: number } | null {
  const v = value.trim();
  if (!v) return null;
  let hostname: string;
  let portText: string | undefined;
  if (v.startsWith("[")) {
    const end = v.indexOf("]");
    if (end < 0) return null;
    hostname = v.slice(1, end);
    const rest = v.slice(end + 1);
    if (rest) {
      if (!rest.startsWith(":")) return null;
      portText = rest.slice(1);
    }
  } else if ((v.match(/:/g) ?? []).length > 1) {
    hostname = v; // bare IPv6 address (allow-list entries, a bound "::1")
  } else {
    const i = v.lastIndexOf(":");
    hostname = i < 0 ? v : v.slice(0, i);
    portText = i < 0 ? undefined : v.slice(i + 1);
  }
  if (!/^[\w.:%-]+$/.test(hostname)) return null;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return null;
    return { hostname: normalizeHostname(hostname), port: Number(portText) };
  }
  return { hostname: normalizeHostname(hostname) };
}

/** Names the bound address stands for: itself, or every interface address for a wildcard bind. */
export function boundHostnames(boundHost: string): string[] {
  const h = normalizeHostname(boundHost);
  if (!WILDCARDS.has(h)) return [h];
  const names: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) names.push(normalizeHostname(a.address.split("%")[0]!));
  }
  return names;
}

type Match = { kind: "local" } | { kind: "listed"; port?: number } | null;

/** Host and Origin values whose decision is kept (per HostAllowList). */
const MAX_REMEMBERED = 256;

/** Compiled once per policy: the allow-list as sets. */
export class HostAllowList {
  private readonly local: Set<string>;
  private readonly listed = new Map<string, Array<number | undefined>>();

  constructor(readonly policy: GuardPolicy) {
    this.local = new Set(boundHostnames(policy.boundHost));
    for (const entry of policy.allowedHosts) {
      const parsed = splitHostPort(entry);
      if (!parsed) throw new Error(`Invalid allowed host "${entry}"`);
      const ports = this.listed.get(parsed.hostname) ?? [];
      ports.push(parsed.port);
      this.listed.set(parsed.hostname, ports);
    }
  }

  private match(hostname: string, port: number | undefined): Match {
    const ports = this.listed.get(hostname);
    if (ports?.some((p) => p === undefined || p === port)) return { kind: "listed", port };
    if (isLoopbackHostname(hostname) || this.local.has(hostname)) return { kind: "local" };
    return null;
  }

  /**
   * Decisions already taken, per Host and per Origin value: a client sends the same few values
   * on every request, and parsing them was the guard's main cost per request (bench/footprint.ts
   * CPU per GET /api/monitoring). Bounded: a client sending ever new values only clears it.
   */
  private readonly hostDecisions = new Map<string, boolean>();
  private readonly originDecisions = new Map<string, boolean>();

  private remember(cache: Map<string, boolean>, key: string, decide: () => boolean): boolean {
    const known = cache.get(key);
    if (known !== undefined) return known;
    const decision = decide();
    if (cache.size >= MAX_REMEMBERED) cache.clear();
    cache.set(key, decision);
    return decision;
  }

  /** Rule 1: a Host header value (or the request URL's host when there is none). */
  hostAllowed(host: string): boolean {
    return this.remember(this.hostDecisions, host, () => {
      const parsed = splitHostPort(host);
      return parsed !== null && this.match(parsed.hostname, parsed.port) !== null;
    });
  }

  /** Rule 2: an Origin header value. (The served port can change, 0 until the listen: not remembered then.) */
  originAllowed(origin: string): boolean {
    if (this.policy.port() === 0) return this.decideOrigin(origin);
    return this.remember(this.originDecisions, `${this.policy.port()} ${origin}`, () => this.decideOrigin(origin));
  }

  private decideOrigin(origin: string): boolean {
    if (origin === "null") return false;
    const extra = this.policy.allowedOrigins ?? [];
    if (extra.includes(origin) || extra.includes("*")) return true;
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return false;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return false;
    const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
    const m = this.match(normalizeHostname(url.hostname), port);
    if (!m) return false;
    if (m.kind === "listed") return true;
    const served = this.policy.port();
    return served === 0 || port === served;
  }
}

/** The parts of a request the guard reads (a Request, or a test table row). */
export interface GuardInput {
  method: string;
  path: string;
  headers: Headers;
  /** The request URL's host, used when no Host header came (app.request() in tests). */
  urlHost: string;
}

const refuse = (status: 400 | 403, reason: RefusalReason, message: string, details: string): Refusal => ({ status, reason, message, details });

export interface GuardOptions {
  /**
   * Paths whose clients post JSON under any Content-Type: Ollama's routes, whose documented
   * `curl -d` examples send application/x-www-form-urlencoded (Ollama's server ignores the type).
   * There rule 4 is waived only for requests with no browser signal at all (no Origin, no
   * Sec-Fetch-*): every current browser sends Origin on a cross-origin POST and Sec-Fetch-Site
   * on every request, so a forged form post still meets rules 2-4; curl and SDKs send neither.
   */
  anyBodyType?: (path: string) => boolean;
}

/** The decision, as a pure function: null = let it through. */
export function checkRequest(input: GuardInput, hosts: HostAllowList, options: GuardOptions = {}): Refusal | null {
  const { method, path, headers } = input;
  const host = headers.get("host") ?? input.urlHost;
  if (!hosts.hostAllowed(host)) {
    return refuse(403, "host", "Host not allowed", `Host "${host.slice(0, 100)}" is not a loopback name, the bound address or one of --allowed-hosts`);
  }
  const origin = headers.get("origin");
  let originOk = false;
  if (origin !== null) {
    if (!hosts.originAllowed(origin)) {
      return refuse(403, "origin", "Cross-origin request refused", `Origin "${origin.slice(0, 100)}" is not allowed`);
    }
    originOk = true;
  }
  const site = headers.get("sec-fetch-site");
  const unsafe = UNSAFE.has(method);
  if ((site === "cross-site" || site === "same-site") && !originOk) {
    const navigation =
      (method === "GET" || method === "HEAD") &&
      headers.get("sec-fetch-mode") === "navigate" &&
      !["iframe", "frame", "object", "embed"].includes(headers.get("sec-fetch-dest") ?? "");
    if (!navigation) return refuse(403, "cross-site", "Cross-site request refused", `Sec-Fetch-Site: ${site}`);
  }
  if (!unsafe || isSocketPath(path)) return null;
  if (isFormPath(path)) {
    if (site === "same-origin" || originOk) return null;
    return refuse(403, "form-origin", "Cross-origin form post refused", "Console forms must be posted from the console's own pages");
  }
  const type = headers.get("content-type") ?? "";
  const browser = origin !== null || site !== null || headers.get("sec-fetch-mode") !== null;
  if (!browser && options.anyBodyType?.(path)) return null;
  if (!JSON_TYPE.test(type)) {
    return refuse(400, "content-type", "Invalid request data", `The body must be JSON (Content-Type: application/json), even an empty one, not ${type ? type.slice(0, 100) : "untyped"}`);
  }
  return null;
}

/** How a refusal is written for a path: OpenAI's shape, Engine.IO's, Ollama's, or our envelope. */
export type ErrorShape = "openai" | "engineio" | "ollama" | "envelope";

export function refusalResponse(refusal: Refusal, shape: ErrorShape): Response {
  const code = refusal.status === 403 ? "FORBIDDEN" : "VALIDATION_ERROR";
  if (shape === "openai") return openAiErrorResponse(new ApiError(code, refusal.message, refusal.details));
  if (shape === "ollama") return Response.json({ error: `${refusal.message}: ${refusal.details}` }, { status: refusal.status });
  if (shape === "engineio") {
    // engine.io-client shows `message` in connect_error; code 4 is Engine.IO's "Forbidden".
    return Response.json({ code: refusal.status === 403 ? 4 : 3, message: `${refusal.message}: ${refusal.details}` }, { status: refusal.status });
  }
  return errorResponse(new ApiError(code, refusal.message, refusal.details));
}

/** Reads a Request into the guard's input. */
export function guardInput(req: Request, url: URL = new URL(req.url)): GuardInput {
  return { method: req.method, path: url.pathname, headers: req.headers, urlHost: url.host };
}

/** The guard as Hono middleware, applied first in createApp. */
export function guardMiddleware(hosts: HostAllowList, shapeOf: (path: string) => ErrorShape, options: GuardOptions = {}): MiddlewareHandler {
  return async (c, next) => {
    // The URL is parsed only when there is no Host header (app.request() in tests): checkRequest
    // prefers the header, so passing it as urlHost changes nothing and saves a URL per request.
    const headers = c.req.raw.headers;
    const urlHost = headers.get("host") ?? new URL(c.req.url).host;
    const refusal = checkRequest({ method: c.req.method, path: c.req.path, headers, urlHost }, hosts, options);
    if (refusal) return refusalResponse(refusal, shapeOf(c.req.path));
    await next();
  };
}
