/**
 * Ollama's HTTP API on the proxy's own port, backed by the same models, on-demand loading,
 * queue, leases and request statistics as /v1: every generation goes through the proxy's relay
 * (proxy/relay.ts forward()) to the model's llama-server, and only the bodies are translated
 * (translate.ts on the way in, stream.ts on the way out). Errors are Ollama's `{"error": "..."}`
 * with Ollama's status codes (server/routes.go), validation and auth included, because Ollama
 * clients read `error` as a string (ollama-js: `errorData.error || message`).
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z, type ZodType } from "../zod";
import type { ModelRow } from "../db/schema";
import { ApiError } from "../http/errors";
import { describeIssues } from "../http/validate";
import { removeModel } from "../models/catalog";
import { acceptRequestId, sessionHeaderNames, sessionIdOf } from "../activity/record";
import { forward, type ForwardArgs, type RelayDeps } from "../proxy/relay";
import { hasRewrite, rewriteBody } from "../proxy/rewrite";
import { captureAnswer } from "../activity/captures";
import { clientAddress, keyNameOf, restoreSavedPrompt, withRequestId } from "../proxy/routes";
import type { Services } from "../services";
import { DurationError, parseKeepAlive, poolKeepAlive, type KeepAlive } from "./duration";
import { HeaderCache, psEntry, showEntry, tagEntry } from "./models";
import { resolveOllamaName } from "./names";
import { OptionsError } from "./options";
import {
  chatRequestSchema,
  deleteRequestSchema,
  embeddingsRequestSchema,
  embedRequestSchema,
  generateRequestSchema,
  showRequestSchema,
} from "./schema";
import { OllamaTranslator, sseToNdjson, upstreamErrorMessage, type OllamaEndpoint, type RequestClock } from "./stream";
import { ollamaErrorBody } from "./paths";
import { chatToUpstream, embedInputs, embedToUpstream, generateToUpstream, TranslateError, type UpstreamRequest } from "./translate";

/**
 * The Ollama version /api/version reports: the release whose API (docs/api.md) this module
 * follows. Clients gate features on it (tools, structured outputs, think), so it must not be
 * our own 0.x version.
 */
export const OLLAMA_COMPAT_VERSION = "0.32.15";

/** An error to answer in Ollama's shape. */
export class OllamaError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = "OllamaError";
  }
}

/** Any error of ours -> OllamaError (ApiError keeps its status; unknown errors are 500). */
export function toOllamaError(err: unknown): OllamaError {
  if (err instanceof OllamaError) return err;
  if (err instanceof ApiError) return new OllamaError(err.status, err.details ? `${err.message}: ${err.details}` : err.message, err.headers);
  if (err instanceof DurationError || err instanceof OptionsError || err instanceof TranslateError) return new OllamaError(400, err.message);
  return new OllamaError(500, (err as Error)?.message ?? String(err));
}

export function ollamaErrorResponse(err: OllamaError): Response {
  return Response.json(ollamaErrorBody(err.message), { status: err.status, headers: err.headers });
}

/** The 501 of the model-management routes: where models come from here. */
export const MODELS_FROM_FOLDER =
  "llama-async-proxy does not download, create or copy models: it serves the GGUF files of its models folder (basePath). " +
  "Put the file there and rescan (POST /api/models/discover), or register it by path (POST /api/models)";

const JSON_HEADERS = () => new Headers({ "content-type": "application/json" });
const NDJSON_HEADERS = { "content-type": "application/x-ndjson", "cache-control": "no-cache", "x-accel-buffering": "no" };

export function ollamaRoutes(s: Services) {
  const app = new Hono();
  // The proxy's own relay, as /v1 uses it: the same pool, leases, queue and statistics.
  const relayDeps: RelayDeps = {
    pool: s.pool,
    isRunning: (id) => s.supervisor.runtimeOf(id)?.state === "running",
    options: s.proxyOptions,
    // A chat resumed after a swap gets its saved prompt back, as on /v1 (src/kvcache).
    beforeForward: restoreSavedPrompt(s),
  };
  const relay = (a: ForwardArgs) => forward(relayDeps, a);
  const headers = new HeaderCache();

  /** Who sent the request, for the activity log and the live queue (as the /v1 routes record it). */
  const requestFacts = (c: Context, streaming: boolean) => ({
    requestId: acceptRequestId(c.req.header("x-request-id")),
    route: c.req.path,
    streaming,
    client: clientAddress(c),
    keyName: keyNameOf(c, s),
    sessionId: sessionIdOf(c.req.raw.headers, sessionHeaderNames(s.config.get().activitySessionHeaders)),
  });
  /** The model a request named, for the activity row of a request refused before it ran. */
  const requestedModel = new WeakMap<Context, string>();

  /**
   * Runs a handler; anything it throws is answered in Ollama's shape. On the generating routes
   * (`record`), a refused request gets its activity row like a refused /v1 request does.
   */
  const handle = (fn: (c: Context) => Promise<Response> | Response, record = false) => async (c: Context) => {
    // The generating routes' bodies are captured when captures are on (the answer as translated
    // for the Ollama client, which is what it received).
    const keep = (res: Response) => (record ? captureAnswer(s.captures, c.req.raw, c.req.path, bodyText.get(c) ?? null, res, requestedModel.get(c)?.slice(0, 200) ?? null) : res);
    try {
      return keep(await fn(c));
    } catch (err) {
      const e = toOllamaError(err);
      if (e.status >= 500) s.log.error(`${c.req.method} ${c.req.path}: ${e.message}`, { stack: (err as Error)?.stack });
      const res = ollamaErrorResponse(e);
      if (!record) return res;
      const id = s.tracker.rejected(
        { ...requestFacts(c, false), model: requestedModel.get(c)?.slice(0, 200) ?? null, rewritten: [] },
        { status: e.status, error: true, message: e.message },
      );
      return keep(withRequestId(res, id));
    }
  };
  /** The client's body as read by body(), for the capture. */
  const bodyText = new WeakMap<Context, string>();

  /**
   * Reads and validates a JSON body whatever its Content-Type says: Ollama's own server (Gin's
   * ShouldBindJSON) ignores it, and its documented curl examples send `-d` bodies as
   * application/x-www-form-urlencoded. Cross-site forgery is the request guard's job (Origin,
   * Fetch Metadata), as in Ollama (its allowed-origins check).
   */
  async function body<T>(c: Context, schema: ZodType<T>): Promise<T> {
    const text = await c.req.text();
    if (s.captures.enabled) bodyText.set(c, text);
    if (!text.trim()) throw new OllamaError(400, "missing request body");
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new OllamaError(400, `invalid JSON: ${(err as Error).message}`);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new OllamaError(400, "the request body must be a JSON object");
    const parsed = z.safeParse(schema, raw);
    if (!parsed.success) throw new OllamaError(400, describeIssues(parsed.error));
    return parsed.data;
  }

  /**
   * The model an Ollama name means. An empty name is "model is required" (400) on chat, show and
   * embeddings, and "model '' not found" (404) on generate, embed and delete, as Ollama answers.
   */
  function resolve(requested: string, ifEmpty: "required" | "not-found" = "required", c?: Context): ModelRow {
    if (c) requestedModel.set(c, requested);
    if (!requested.trim()) throw ifEmpty === "required" ? new OllamaError(400, "model is required") : new OllamaError(404, `model '${requested}' not found`);
    const row = resolveOllamaName(requested, (n) => s.registry.resolve(n));
    if (!row) throw new OllamaError(404, `model '${requested}' not found`);
    return row;
  }

  const running = (id: string) => {
    const st = s.supervisor.runtimeOf(id)?.state;
    return st === "running" || st === "loading";
  };

  /** Empty prompt/messages: load the model (and set its keep_alive), as Ollama does. */
  async function load(c: Context, row: ModelRow, keepAlive: KeepAlive | undefined): Promise<void> {
    const lease = await s.pool.acquire(row.id, c.req.raw.signal, undefined, { keepAliveSeconds: poolKeepAlive(keepAlive) });
    lease.release();
  }

  /**
   * Empty prompt/messages with keep_alive 0: unload. Ollama answers at once and unloads when the
   * requests in flight are done; a lease with keep_alive 0 does exactly that (the pool stops a
   * model whose last request asked for 0 when it goes idle). A model that is not up is left alone.
   */
  function unload(row: ModelRow): void {
    if (!running(row.id)) return;
    s.pool.acquire(row.id, undefined, undefined, { keepAliveSeconds: 0 }).then(
      (lease) => lease.release(),
      (err) => s.log.warn(`Unload of ${row.id} failed: ${(err as Error).message}`),
    );
  }

  const stamp = (model: string) => ({ model, created_at: new Date().toISOString() });

  function loadAnswer(endpoint: OllamaEndpoint, model: string, reason: "load" | "unload") {
    return endpoint === "chat"
      ? { ...stamp(model), message: { role: "assistant", content: "" }, done_reason: reason, done: true }
      : { ...stamp(model), response: "", done: true, done_reason: reason };
  }

  /** A relayed answer with an error status -> Ollama's error (the status kept). */
  async function upstreamError(res: Response): Promise<OllamaError> {
    const text = await res.text().catch(() => "");
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: use the text itself
    }
    let status = res.status as ContentfulStatusCode;
    let message = upstreamErrorMessage(parsed, text.trim() || `llama-server answered ${res.status}`);
    // llama-server answers 501 for a feature the model was not started with (--embeddings):
    // Ollama reports an unsupported capability as 400.
    if (status === 501) status = 400;
    if (/does not support embeddings/i.test(message)) message += ' (add "--embeddings" to the model\'s extraArgs)';
    const retry = res.headers.get("retry-after");
    return new OllamaError(status, message, retry ? { "Retry-After": retry } : undefined);
  }

  /** Sends a translated request through the relay and translates the answer back. */
  async function generate(c: Context, endpoint: OllamaEndpoint, model: string, row: ModelRow, up: UpstreamRequest, stream: boolean, keepAlive: KeepAlive | undefined): Promise<Response> {
    const started = performance.now();
    let leasedAt: number | undefined;
    const clock: RequestClock = { startedAt: started, now: () => performance.now(), loadMs: () => (leasedAt ?? started) - started };
    // The model's rewrite rules apply to what goes upstream, as on /v1 (they name llama-server's fields).
    const rewritten = hasRewrite(row.settings.rewrite) ? rewriteBody(up.body, row.settings.rewrite) : null;
    const upstreamBody = rewritten?.changed.length ? rewritten.body : up.body;
    const track = s.tracker.begin({
      ...requestFacts(c, stream),
      model: row.id,
      rewritten: rewritten?.changed ?? [],
      modelRunning: s.supervisor.runtimeOf(row.id)?.state === "running",
    });
    const res = await relay({
      c,
      model: row,
      streaming: stream,
      stat: s.requests.begin(row.id, `/api/${endpoint}`),
      track,
      started,
      upstreamPath: up.path,
      // The llama-server endpoint it is translated to: what the KV cache's restore reads.
      routedPath: up.path,
      init: { method: "POST", headers: JSON_HEADERS(), body: JSON.stringify(upstreamBody) },
      acquire: { keepAliveSeconds: poolKeepAlive(keepAlive) },
      onLease: () => (leasedAt = performance.now()),
      onDone: () => s.registry.markUsed(row.id),
    });
    return withRequestId(await translateAnswer(res, endpoint, model, clock, stream), track.id);
  }

  async function translateAnswer(res: Response, endpoint: OllamaEndpoint, model: string, clock: RequestClock, stream: boolean): Promise<Response> {
    if (!res.body) return res; // 499: the client is gone
    if (res.status >= 400) return ollamaErrorResponse(await upstreamError(res));
    if (stream) {
      return new Response(sseToNdjson(res.body, new OllamaTranslator(endpoint, model, clock)), { status: 200, headers: NDJSON_HEADERS });
    }
    const translator = new OllamaTranslator(endpoint, model, clock, true);
    const errors = translator.push(await res.json());
    if (errors.length && "error" in errors[0]!) return ollamaErrorResponse(new OllamaError(500, String(errors[0]!.error)));
    return Response.json(translator.finish());
  }

  const inferenceLimit = bodyLimit({
    maxSize: s.proxyOptions.maxBodyBytes,
    onError: (c) => c.json(ollamaErrorBody(`request body too large (limit ${s.proxyOptions.maxBodyBytes} bytes)`), 413),
  });
  const smallLimit = bodyLimit({
    maxSize: 1024 * 1024,
    onError: (c) => c.json(ollamaErrorBody("request body too large (limit 1 MiB)"), 413),
  });

  app.get("/api/version", (c) => c.json({ version: OLLAMA_COMPAT_VERSION }));

  app.get("/api/tags", handle((c) => {
    const models = s.registry.list().filter((r) => !r.missing).map((r) => tagEntry(r, headers.get(r.path)));
    return c.json({ models });
  }));

  app.get("/api/ps", handle((c) => {
    const models = [];
    for (const rt of s.supervisor.runtimes()) {
      if (rt.state !== "running" && rt.state !== "loading") continue;
      const row = s.registry.get(rt.modelId);
      if (!row) continue;
      models.push(psEntry(row, rt, headers.get(row.path), s.pool.idleExpiresAt(row.id)));
    }
    // Ollama lists the longest remaining time first.
    models.sort((a, b) => Date.parse(b.expires_at) - Date.parse(a.expires_at));
    return c.json({ models });
  }));

  app.post("/api/show", smallLimit, handle(async (c) => {
    const req = await body(c, showRequestSchema);
    const row = resolve(req.model ?? req.name ?? "");
    return c.json(showEntry(row, headers.get(row.path, true)));
  }));

  app.post("/api/chat", inferenceLimit, handle(async (c) => {
    const req = await body(c, chatRequestSchema);
    const keepAlive = parseKeepAlive(req.keep_alive);
    const row = resolve(req.model, "required", c);
    if (!req.messages || req.messages.length === 0) {
      if (keepAlive === 0) {
        unload(row);
        return c.json(loadAnswer("chat", req.model, "unload"));
      }
      await load(c, row, keepAlive);
      return c.json(loadAnswer("chat", req.model, "load"));
    }
    const stream = req.stream ?? true;
    return generate(c, "chat", req.model, row, chatToUpstream(req, stream), stream, keepAlive);
  }, true));

  app.post("/api/generate", inferenceLimit, handle(async (c) => {
    const req = await body(c, generateRequestSchema);
    const keepAlive = parseKeepAlive(req.keep_alive);
    const row = resolve(req.model, "not-found", c);
    if (!req.prompt && !req.suffix && !(req.images && req.images.length)) {
      if (keepAlive === 0) {
        unload(row);
        return c.json(loadAnswer("generate", req.model, "unload"));
      }
      await load(c, row, keepAlive);
      return c.json(loadAnswer("generate", req.model, "load"));
    }
    const stream = req.stream ?? true;
    return generate(c, "generate", req.model, row, generateToUpstream(req, stream), stream, keepAlive);
  }, true));

  /** /v1/embeddings through the relay; returns the vectors in input order and the prompt token count. */
  async function embed(c: Context, endpoint: string, row: ModelRow, inputs: string[], keepAlive: KeepAlive | undefined) {
    const started = performance.now();
    let leasedAt: number | undefined;
    const up = embedToUpstream(inputs);
    const track = s.tracker.begin({
      ...requestFacts(c, false),
      model: row.id,
      rewritten: [],
      modelRunning: s.supervisor.runtimeOf(row.id)?.state === "running",
    });
    const res = await relay({
      c,
      model: row,
      streaming: false,
      stat: s.requests.begin(row.id, endpoint),
      track,
      started,
      upstreamPath: up.path,
      init: { method: "POST", headers: JSON_HEADERS(), body: JSON.stringify(up.body) },
      acquire: { keepAliveSeconds: poolKeepAlive(keepAlive) },
      onLease: () => (leasedAt = performance.now()),
      onDone: () => s.registry.markUsed(row.id),
    });
    if (res.status === 499 && !res.body) throw new OllamaError(499 as ContentfulStatusCode, "request canceled");
    if (res.status >= 400) throw await upstreamError(res);
    const json = (await res.json()) as { data?: { index?: number; embedding?: number[] }[]; usage?: { prompt_tokens?: number } };
    const data = [...(json.data ?? [])].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
    return {
      requestId: track.id,
      vectors: data.map((d) => d.embedding ?? []),
      promptTokens: json.usage?.prompt_tokens,
      totalMs: performance.now() - started,
      loadMs: (leasedAt ?? started) - started,
    };
  }

  app.post("/api/embed", inferenceLimit, handle(async (c) => {
    const req = await body(c, embedRequestSchema);
    const keepAlive = parseKeepAlive(req.keep_alive);
    const row = resolve(req.model, "not-found", c);
    const inputs = embedInputs(req.input);
    if (inputs.length === 0) {
      await load(c, row, keepAlive);
      return c.json({ model: req.model, embeddings: [] });
    }
    const r = await embed(c, "/api/embed", row, inputs, keepAlive);
    const dims = req.dimensions ?? 0;
    const embeddings = dims > 0 ? r.vectors.map((v) => truncateAndNormalize(v, dims)) : r.vectors;
    return withRequestId(c.json({
      model: req.model,
      embeddings,
      total_duration: Math.round(r.totalMs * 1e6),
      ...(r.loadMs > 0 ? { load_duration: Math.round(r.loadMs * 1e6) } : {}),
      ...(r.promptTokens ? { prompt_eval_count: r.promptTokens } : {}),
    }), r.requestId);
  }, true));

  app.post("/api/embeddings", inferenceLimit, handle(async (c) => {
    const req = await body(c, embeddingsRequestSchema);
    const keepAlive = parseKeepAlive(req.keep_alive);
    const row = resolve(req.model, "required", c);
    if (!req.prompt) {
      await load(c, row, keepAlive);
      return c.json({ embedding: [] });
    }
    const r = await embed(c, "/api/embeddings", row, [req.prompt], keepAlive);
    return withRequestId(c.json({ embedding: r.vectors[0] ?? [] }), r.requestId);
  }, true));

  app.delete("/api/delete", smallLimit, handle(async (c) => {
    const req = await body(c, deleteRequestSchema);
    const requested = req.model ?? req.name ?? "";
    const row = resolve(requested, "not-found");
    try {
      // Forgets the registration; the file stays where it is (a rescan finds it again).
      removeModel(s, row.id);
    } catch (err) {
      if (err instanceof ApiError && err.code === "CONFLICT") {
        throw new OllamaError(409, `model '${requested}' is running: stop it first (POST /api/models/${row.id}/stop)`);
      }
      throw err;
    }
    return c.body(null, 200);
  }));

  // Model management Ollama has and this proxy does not: models come from the models folder.
  app.post("/api/pull", smallLimit, handle(async (c) => {
    // A client that "pulls" a model we already serve (many do before first use) gets Ollama's
    // success: nothing to download. Anything else is the clear refusal.
    const text = await c.req.text();
    let req: { model?: unknown; name?: unknown; stream?: unknown } = {};
    try {
      req = JSON.parse(text || "{}");
    } catch {
      throw new OllamaError(400, "invalid JSON");
    }
    const name = typeof req.model === "string" ? req.model : typeof req.name === "string" ? req.name : "";
    const row = name ? resolveOllamaName(name, (n) => s.registry.resolve(n)) : undefined;
    if (!row) throw new OllamaError(501, `cannot pull '${name}': ${MODELS_FROM_FOLDER}`);
    if (req.stream === false) return c.json({ status: "success" });
    return new Response(`${JSON.stringify({ status: "success" })}\n`, { headers: NDJSON_HEADERS });
  }));
  for (const path of ["/api/push", "/api/create", "/api/copy"] as const) {
    app.post(path, smallLimit, (c) => c.json(ollamaErrorBody(MODELS_FROM_FOLDER), 501));
  }
  // HEAD is routed to GET by Hono (and answered without the body).
  app.get("/api/blobs/:digest", (c) => c.json(ollamaErrorBody(MODELS_FROM_FOLDER), 501));
  app.post("/api/blobs/:digest", (c) => c.json(ollamaErrorBody(MODELS_FROM_FOLDER), 501));

  return app;
}

/** Ollama's `dimensions`: keep the first N components and L2-normalise again. */
export function truncateAndNormalize(v: number[], dims: number): number[] {
  const cut = v.slice(0, dims);
  const norm = Math.sqrt(cut.reduce((a, x) => a + x * x, 0));
  return norm > 0 ? cut.map((x) => x / norm) : cut;
}
