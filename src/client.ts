/**
 * The seed API's ApiService as a small typed client. Everything the branch's routes declare is
 * called through Hono's RPC client (`hc<ApiRoutes>`), so argument and result types come from the
 * routes themselves: change a route and this file stops compiling where it disagrees.
 *
 * Usage: `const api = new ApiService("http://127.0.0.1:3000", { apiKey }); await api.getMetrics();`
 */
import { hc, type ClientResponse } from "hono/client";
import type { ApiRoutes } from "./app";
import type { LlamaServerConfig } from "./config/schema";
import type { LogEntry, LogLevel } from "./logs/types";
import type { HistoryResponse } from "./metrics/history";
import type { SystemMetrics } from "./metrics/types";
import type { Model } from "./models/types";

export type { LlamaServerConfig, LogEntry, Model, SystemMetrics };
export type MetricsHistoryResponse = HistoryResponse;
export interface ModelsResponse { count: number; models: Model[] }
export interface DiscoverOptions { recursive?: boolean; includePatterns?: string[]; excludePatterns?: string[] }
export type Resolution = "1m" | "5m" | "15m" | "1h";

/** A failed call: the envelope's error code and details, plus the HTTP status. */
export class ApiClientError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
    readonly details?: string,
  ) {
    super(message);
    this.name = "ApiClientError";
  }
}

interface Envelope<T> {
  success: boolean;
  data?: T;
  message?: string;
  error?: { code: string; message: string; details?: string };
}

/** The `data` of a route's success envelope, read from the route's declared response. */
type DataOf<R> = R extends ClientResponse<infer B, any, any> ? (B extends { success: true; data: infer D } ? D : never) : never;

/**
 * Unwraps the `{success, data|error, timestamp}` envelope: the data on success (also for a 503
 * health report, which is a success envelope describing an unhealthy system), an ApiClientError
 * carrying `code`/`details` otherwise, including for answers that are not an envelope at all.
 */
async function unwrap<R extends { status: number; text(): Promise<string> }, T = DataOf<R>>(pending: Promise<R>): Promise<T> {
  const r = await pending;
  const text = await r.text();
  let body: Envelope<T> | undefined;
  try {
    body = JSON.parse(text) as Envelope<T>;
  } catch {
    throw new ApiClientError(`HTTP ${r.status}: the server did not answer with JSON`, r.status === 401 ? "UNAUTHORIZED" : "INVALID_RESPONSE", r.status, text.slice(0, 200));
  }
  if (body?.success === true && "data" in body) return body.data as T;
  const e = body?.error;
  throw new ApiClientError(e?.message ?? `HTTP ${r.status}`, e?.code ?? "INVALID_RESPONSE", r.status, e?.details);
}

/**
 * What the client calls to send a request: the global fetch, or anything that answers a Request,
 * such as a Hono app's own `app.fetch` (the console calls the API in process that way, no socket).
 */
export type FetchLike = (request: Request) => Response | Promise<Response>;

export interface ApiServiceOptions {
  apiKey?: string;
  /** Custom fetch (tests, proxies, `app.fetch` for in-process calls). */
  fetch?: FetchLike;
  /** Extra headers on every call (the console forwards its caller's cookie / Authorization). */
  headers?: Record<string, string>;
}

export class ApiService {
  private readonly rpc;
  private readonly base: string;
  private readonly headers: Record<string, string>;

  constructor(baseUrl = "http://localhost:3000", options: ApiServiceOptions = {}) {
    this.base = baseUrl.replace(/\/+$/, "") + "/api";
    this.headers = { ...options.headers, ...(options.apiKey ? { Authorization: `Bearer ${options.apiKey}` } : {}) };
    const send: FetchLike = options.fetch ?? ((req) => fetch(req));
    // hc calls fetch(url, init); one Request is what both the global fetch and app.fetch take.
    // The server requires Content-Type: application/json on every POST/PATCH/PUT/DELETE, bodiless
    // ones (start, stop, remove) included; hc only sets it when there is a json body.
    const withJsonType = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(input, init);
      if (req.method !== "GET" && req.method !== "HEAD" && !req.headers.has("content-type")) req.headers.set("content-type", "application/json");
      return send(req);
    }) as typeof fetch;
    this.rpc = hc<ApiRoutes>(this.base, { headers: this.headers, fetch: withJsonType });
  }

  // Configuration
  getConfig() {
    return unwrap(this.rpc.config.$get());
  }
  /** The seed API's eight fields are required; the proxy's extra settings are optional. */
  updateConfig(config: ConfigInput) {
    return unwrap(this.rpc.config.$post({ json: config }));
  }

  // Models
  getModels() {
    return unwrap(this.rpc.models.$get());
  }
  registerModels(models: RegisterInput["models"]) {
    return unwrap(this.rpc.models.$post({ json: { models } }));
  }
  discoverModels(paths: string[], options: DiscoverOptions = {}) {
    return unwrap(this.rpc.models.discover.$post({ json: { paths, ...options } }));
  }
  removeModel(id: string) {
    return unwrap(this.rpc.models[":id"].$delete({ param: { id } }));
  }
  /** Starts a model and resolves once it runs (beyond the seed API). */
  startModel(id: string) {
    return unwrap(this.rpc.models[":id"].start.$post({ param: { id }, query: {} }));
  }
  /** Stops a model; idempotent (beyond the seed API). */
  stopModel(id: string) {
    return unwrap(this.rpc.models[":id"].stop.$post({ param: { id } }));
  }
  /** PATCH /api/models/:id: name, description, per-model settings (null removes an override). */
  updateModel(id: string, patch: ModelPatchInput) {
    return unwrap(this.rpc.models[":id"].$patch({ param: { id }, json: patch }));
  }
  /** Deletes every saved KV cache of a model. */
  deleteKvCaches(id: string) {
    return unwrap(this.rpc.models[":id"]["kv-cache"].$delete({ param: { id } }));
  }
  /** Deletes one saved KV cache of a model. */
  deleteKvCache(id: string, entry: string) {
    return unwrap(this.rpc.models[":id"]["kv-cache"][":entry"].$delete({ param: { id, entry } }));
  }

  // Health
  getHealth() {
    return unwrap(this.rpc.health.$get());
  }
  getStatus() {
    return unwrap(this.rpc.status.$get());
  }

  // Monitoring
  getMetrics() {
    return unwrap(this.rpc.monitoring.$get());
  }
  /** hours 1..168 (default 24), resolution 1m|5m|15m|1h (default 5m); the server validates both. */
  getMetricsHistory(hours?: number, resolution?: Resolution) {
    return unwrap(
      this.rpc.monitoring.history.$get({
        query: { ...(hours !== undefined ? { hours: String(hours) } : {}), ...(resolution !== undefined ? { resolution } : {}) },
      }),
    );
  }

  // Logs (beyond the seed API's ApiService)
  getLogs(filters: { level?: LogLevel; source?: string; since?: string; afterId?: number; q?: string; limit?: number } = {}) {
    const { afterId, limit, ...rest } = filters;
    return unwrap(
      this.rpc.logs.$get({
        query: { ...rest, ...(afterId !== undefined ? { afterId: String(afterId) } : {}), ...(limit !== undefined ? { limit: String(limit) } : {}) },
      }),
    );
  }
}

type Rpc = ReturnType<typeof hc<ApiRoutes>>;
type ConfigInput = Parameters<Rpc["config"]["$post"]>[0]["json"];
type RegisterInput = Parameters<Rpc["models"]["$post"]>[0]["json"];
/** The PATCH /api/models/:id body, as the route's schema declares it. */
export type ModelPatchInput = Parameters<Rpc["models"][":id"]["$patch"]>[0]["json"];
/** GET /api/health data, as the route declares it. */
export type HealthData = DataOf<Awaited<ReturnType<Rpc["health"]["$get"]>>>;
/** GET /api/status data, as the route declares it. */
export type StatusData = DataOf<Awaited<ReturnType<Rpc["status"]["$get"]>>>;
