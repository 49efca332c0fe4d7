import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ApiError } from "../http/errors";
import { openAiErrorResponse } from "../http/openai";
import type { ModelRow } from "../db/schema";
import { listModels } from "../models/view";
import { INSTANCE_HEADER } from "../peers/instance";
import { peerModelEntries, peerModelEntry } from "../peers/models-list";
import { relayToPeers } from "../peers/relay";
import { resolveModelTarget } from "../peers/resolver";
import type { Services } from "../services";
import type { ModelPool } from "../supervisor/pool";
import { upstreamRequestHeaders } from "./forward";
import { DEFAULT_PROXY_OPTIONS, type ProxyOptions } from "./options";
import { MODEL_ROUTED_PATHS } from "./paths";
import { forward as relayForward, type ForwardArgs, type RelayDeps } from "./relay";
import { hasRewrite, rewriteBody } from "./rewrite";
import { getConnInfo } from "hono/bun";
import { captureAnswer } from "../activity/captures";
import { acceptRequestId, sessionHeaderNames, sessionIdOf } from "../activity/record";
import { keyAllowsModel } from "../keys/keys";
import { identityOf } from "../keys/middleware";

/** The connecting address (null when the app is driven without a Bun server, as in app.request tests). */
export function clientAddress(c: Context): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null;
  }
}

/** The name of the API key the request authenticated with: "admin" for --api-key, null without auth. */
export function keyNameOf(c: Context, s: Services): string | null {
  const named = (c.var as Record<string, unknown>).apiKeyName;
  if (typeof named === "string") return named;
  return s.options.apiKey ? "admin" : null;
}

/** X-Request-Id on every answer of a model route, so a client can find (or cancel) its request. */
export function withRequestId(res: Response, id: string): Response {
  try {
    res.headers.set("x-request-id", id);
    return res;
  } catch {
    // Immutable headers (a fetch() Response passed through): copy them.
    const headers = new Headers(res.headers);
    headers.set("x-request-id", id);
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
}

/** Throws OpenAI-shaped errors via ApiError (app.onError renders /v1 errors in that shape). */
export function selectModel(s: Services, requested: unknown): ModelRow {
  if (requested !== undefined && requested !== null && typeof requested !== "string") {
    throw new ApiError("VALIDATION_ERROR", "`model` must be a string");
  }
  if (typeof requested === "string" && requested.trim() !== "") {
    const row = s.registry.resolve(requested.trim());
    if (!row) throw new ApiError("MODEL_NOT_FOUND", `The model '${requested}' does not exist`, "GET /v1/models lists the models this proxy serves");
    return row;
  }
  // No model named: the only running model, else the only model there is.
  const running = s.supervisor.runtimes().filter((r) => r.state === "running" || r.state === "loading");
  if (running.length === 1) {
    const row = s.registry.get(running[0]!.modelId);
    if (row) return row;
  }
  const all = s.registry.list();
  if (all.length === 1) return all[0]!;
  throw new ApiError(
    "VALIDATION_ERROR",
    "`model` is required when more than one model is available",
    `Known models: ${all.map((m) => m.id).join(", ") || "none (register or discover some first)"}`,
  );
}

/**
 * The relay's seam for saved KV caches (src/kvcache): a request for a model with a saved prompt
 * that prefixes this one is pinned to the slot it is restored into. Shared by /v1, the native
 * routes and Ollama's, so a conversation resumed after a swap skips its prompt whichever API it
 * speaks.
 */
export function restoreSavedPrompt(s: Services): NonNullable<RelayDeps["beforeForward"]> {
  return (a, lease, signal) =>
    typeof a.init.body === "string" && a.routedPath
      ? s.kvcache.prepareRequest({ modelId: a.model.id, baseUrl: lease.baseUrl, path: a.routedPath, body: a.init.body, signal })
      : Promise.resolve(null);
}

export function proxyRoutes(s: Services, pool: ModelPool, options: ProxyOptions = DEFAULT_PROXY_OPTIONS) {
  const app = new Hono();
  const relay: RelayDeps = {
    pool,
    isRunning: (id) => s.supervisor.runtimeOf(id)?.state === "running",
    beforeForward: restoreSavedPrompt(s),
    options,
  };
  const forward = (a: ForwardArgs) => relayForward(relay, a);

  app.get("/v1/models", (c) => {
    // An inference key sees the models it may use.
    const key = identityOf(c)?.key;
    const data = listModels(s).filter((m) => !key || keyAllowsModel(key, m.id, m.settings?.aliases ?? [])).map((m) => ({
      id: m.id,
      object: "model" as const,
      created: Math.floor(Date.parse(s.registry.get(m.id)?.createdAt ?? "") / 1000) || Math.floor(Date.now() / 1000),
      owned_by: "llama-async-proxy",
      // Beyond OpenAI's shape: what this proxy knows about the model.
      name: m.name,
      status: m.status,
      aliases: m.settings?.aliases ?? [],
      ...(m.family ? { family: m.family } : {}),
      ...(m.contextSize ? { context_size: m.contextSize } : {}),
    }));
    // Peers' models after ours (each entry says which peer: owned_by and peer).
    const remote = peerModelEntries(s, c.req.header("via") ?? null, new Set(data.map((m) => m.id))).filter((m) => !key || keyAllowsModel(key, m.id, m.aliases));
    // Another instance that has us as a peer learns from this header that we are this product.
    c.header(INSTANCE_HEADER, s.instanceId);
    return c.json({ object: "list", data: [...data, ...remote] });
  });

  app.get("/v1/models/:id{.+}", (c) => {
    const row = s.registry.resolve(c.req.param("id"));
    const remote = row ? undefined : peerModelEntry(s, c.req.param("id"), c.req.header("via") ?? null);
    if (remote) return c.json(remote);
    if (!row) return openAiErrorResponse(new ApiError("MODEL_NOT_FOUND", `The model '${c.req.param("id")}' does not exist`));
    return c.json({ id: row.id, object: "model", created: Math.floor(Date.parse(row.createdAt) / 1000), owned_by: "llama-async-proxy" });
  });

  // Bodies are read whole (the `model` field decides where they go): bound them.
  const limit = bodyLimit({
    maxSize: options.maxBodyBytes,
    onError: () => openAiErrorResponse(new ApiError("PAYLOAD_TOO_LARGE", "Request body too large", `The limit is ${options.maxBodyBytes} bytes`)),
  });
  /** The client's body, read once by handleModelRequest, for the capture. */
  const bodyText = new WeakMap<Context, string>();
  for (const path of MODEL_ROUTED_PATHS) {
    app.post(path, limit, async (c) => {
      const res = await handleModelRequest(c, path);
      return captureAnswer(s.captures, c.req.raw, path, bodyText.get(c) ?? null, res);
    });
  }

  /** Who sent the request, for the activity log and the live queue. */
  const requestFacts = (c: Context, path: string, streaming: boolean) => ({
    requestId: acceptRequestId(c.req.header("x-request-id")),
    route: path,
    streaming,
    client: clientAddress(c),
    keyName: keyNameOf(c, s),
    sessionId: sessionIdOf(c.req.raw.headers, sessionHeaderNames(s.config.get().activitySessionHeaders)),
  });

  /** A request refused before it reached a model is in the activity log too. */
  const refuseWith = (c: Context, path: string, requested: unknown, res: Response, message: string) => {
    const id = s.tracker.rejected(
      { ...requestFacts(c, path, false), model: typeof requested === "string" ? requested.slice(0, 200) : null, rewritten: [] },
      { status: res.status, error: true, message },
    );
    return withRequestId(res, id);
  };
  const refuse = (c: Context, path: string, requested: unknown, err: ApiError) => refuseWith(c, path, requested, openAiErrorResponse(err), err.message);

  /**
   * A named key's rules, once the model is known: its model globs (OpenAI 403), then its limits
   * (429 with Retry-After). Null: it may go (and the request is counted against its limits).
   */
  const keyRefusal = (c: Context, path: string, modelName: string, aliases: readonly string[]): Response | null => {
    const key = identityOf(c)?.key;
    if (!key) return null;
    if (!keyAllowsModel(key, modelName, aliases)) {
      const message = `The API key '${key.name}' may not use the model '${modelName}'`;
      return refuseWith(c, path, modelName, openAiErrorResponse(new ApiError("MODEL_NOT_ALLOWED", message)), message);
    }
    const limit = s.keyLimiter.admit(key);
    if (limit.ok) return null;
    const res = openAiErrorResponse(new ApiError("RATE_LIMITED", limit.message, undefined, { "Retry-After": String(limit.retryAfterSeconds) }));
    return refuseWith(c, path, modelName, res, limit.message);
  };

  async function handleModelRequest(c: Context, path: string): Promise<Response> {
    const raw = c.req.raw;
    const text = await raw.text();
    if (s.captures.enabled) bodyText.set(c, text);
    let body: Record<string, unknown>;
    try {
      const parsed = text ? JSON.parse(text) : {};
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      body = parsed;
    } catch {
      return refuse(c, path, undefined, new ApiError("VALIDATION_ERROR", "The request body must be a JSON object"));
    }
    const url = new URL(raw.url);
    // The seam to the peers: "local" continues below; "peer" is relayed to another host (null
    // back from the relay: every peer before us in the order failed, so this instance serves it).
    let model: ModelRow;
    let admitted = false;
    try {
      const target = resolveModelTarget(s, body.model, raw.headers.get("via"), (m) => selectModel(s, m));
      if (target.kind === "peer") {
        const refused = keyRefusal(c, path, target.requested, []);
        if (refused) return refused;
        admitted = true;
        // Sent as it came: the peer applies its own rewrite rules for its own models.
        const peerStreaming = body.stream === true;
        const track = s.tracker.begin({ ...requestFacts(c, path, peerStreaming), model: target.requested, rewritten: [], modelRunning: true });
        const answer = await relayToPeers(s, target.routes, { raw, path: url.pathname + url.search, body: text, streaming: peerStreaming, track });
        if (answer) return withRequestId(answer, track.id);
        const fallback = target.routes.find((r) => r.kind === "local");
        if (!fallback || fallback.kind !== "local") throw new ApiError("SERVICE_UNAVAILABLE", "No host could serve the request");
        model = fallback.model;
      } else model = target.model;
    } catch (err) {
      return refuse(c, path, body.model, err as ApiError);
    }
    if (!admitted) {
      const refused = keyRefusal(c, path, model.id, model.settings.aliases ?? []);
      if (refused) return refused;
    }
    // The model's rewrite rules (defaults/overrides/strip); the body is re-serialised only when
    // they changed something, so requests to models without rules are forwarded byte for byte.
    const rules = model.settings.rewrite;
    const rewritten = hasRewrite(rules) ? rewriteBody(body, rules) : null;
    if (rewritten?.changed.length) body = rewritten.body;
    const sent = rewritten?.changed.length ? JSON.stringify(body) : text;
    const streaming = body.stream === true;
    const stat = s.requests.begin(model.id, path);
    const track = s.tracker.begin({
      ...requestFacts(c, path, streaming),
      model: model.id,
      rewritten: rewritten?.changed ?? [],
      modelRunning: s.supervisor.runtimeOf(model.id)?.state === "running",
    });
    const started = performance.now();
    const res = await forward({
      c, model, streaming, stat, started, track,
      upstreamPath: url.pathname + url.search,
      routedPath: path,
      init: { method: "POST", headers: upstreamRequestHeaders(raw.headers), body: sent },
      onDone: () => s.registry.markUsed(model.id),
    });
    return withRequestId(res, track.id);
  }

  // Raw passthrough to one model's own server (its web UI, /props, /slots, /metrics ...).
  app.all("/upstream/:id/*", limit, async (c) => {
    const id = c.req.param("id");
    const row = s.registry.resolve(id);
    if (!row) return openAiErrorResponse(new ApiError("MODEL_NOT_FOUND", `Unknown model '${id}'`));
    const url = new URL(c.req.url);
    const prefix = `/upstream/${encodeURIComponent(id)}`;
    const rest = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname.replace(/^\/upstream\/[^/]+/, "");
    const hasBody = c.req.method !== "GET" && c.req.method !== "HEAD";
    return forward({
      c, model: row, streaming: true, stat: null, started: performance.now(),
      upstreamPath: (rest || "/") + url.search,
      init: { method: c.req.method, headers: upstreamRequestHeaders(c.req.raw.headers), body: hasBody ? await c.req.arrayBuffer() : undefined },
    });
  });

  return app;
}
