import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ApiError } from "../http/errors";
import { openAiError, openAiType } from "../http/openai";
import type { ModelRow } from "../db/schema";
import { listModels } from "../models/view";
import type { Services } from "../services";
import type { Lease, ModelPool } from "../supervisor/pool";
import { downstreamResponseHeaders, passThrough, upstreamRequestHeaders } from "./forward";

/** POST endpoints routed to a model chosen by the body's `model` field. */
export const MODEL_ROUTED_PATHS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/rerank",
  "/v1/reranking",
  "/v1/responses",
  "/v1/messages",
  "/v1/messages/count_tokens",
  "/completion",
  "/completions",
  "/chat/completions",
  "/embedding",
  "/embeddings",
  "/rerank",
  "/reranking",
  "/infill",
  "/tokenize",
  "/detokenize",
  "/apply-template",
] as const;

export interface ProxyOptions {
  /** A streaming request still waiting for its model after this long gets a 200 SSE response with keep-alive comments. */
  loadingCommentAfterMs: number;
  /** Interval between `: loading <model> Ns` comments. */
  loadingCommentEveryMs: number;
  /** Largest request body accepted for a model (images in base64 make chat bodies large). */
  maxBodyBytes: number;
}

export const DEFAULT_PROXY_OPTIONS: ProxyOptions = { loadingCommentAfterMs: 2000, loadingCommentEveryMs: 5000, maxBodyBytes: 100 * 1024 * 1024 };

const encoder = new TextEncoder();

/** Throws OpenAI-shaped errors via ApiError (app.onError renders /v1 errors in that shape). */
export function selectModel(s: Services, requested: unknown): ModelRow {
  if (requested !== undefined && requested !== null && typeof requested !== "string") {
    throw new ApiError("VALIDATION_ERROR", "`model` must be a string");
  }
  if (typeof requested === "string" && requested.trim() !== "") {
    const row = s.registry.resolve(requested.trim());
    if (!row) throw new ApiError("NOT_FOUND", `The model '${requested}' does not exist`, "GET /v1/models lists the models this proxy serves");
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

/** Client-facing error body for /v1 and native routes (OpenAI shape). */
function openAiErrorResponse(err: ApiError): Response {
  const code = err.code === "NOT_FOUND" ? "model_not_found" : err.code.toLowerCase();
  const message = err.details ? `${err.message}: ${err.details}` : err.message;
  return Response.json(openAiError(message, openAiType(err.code), code), { status: err.status, headers: err.headers });
}

const sseError = (message: string, type: string, code: string | number) =>
  encoder.encode(`data: ${JSON.stringify(openAiError(message, type, code))}\n\n`);

export function proxyRoutes(s: Services, pool: ModelPool, options: ProxyOptions = DEFAULT_PROXY_OPTIONS) {
  const app = new Hono();
  const lastTouched = new Map<string, number>();

  /** Model.lastUsed, written at most once a second per model (it is a DB write). */
  const touch = (id: string) => {
    const now = Date.now();
    if (now - (lastTouched.get(id) ?? 0) < 1000) return;
    lastTouched.set(id, now);
    s.registry.touch(id, new Date(now));
  };

  app.get("/v1/models", (c) => {
    const data = listModels(s).map((m) => ({
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
    return c.json({ object: "list", data });
  });

  app.get("/v1/models/:id{.+}", (c) => {
    const row = s.registry.resolve(c.req.param("id"));
    if (!row) return openAiErrorResponse(new ApiError("NOT_FOUND", `The model '${c.req.param("id")}' does not exist`));
    return c.json({ id: row.id, object: "model", created: Math.floor(Date.parse(row.createdAt) / 1000), owned_by: "llama-async-proxy" });
  });

  // Bodies are read whole (the `model` field decides where they go): bound them.
  const limit = bodyLimit({
    maxSize: options.maxBodyBytes,
    onError: (c) =>
      c.json({ error: { message: `Request body too large (limit ${options.maxBodyBytes} bytes)`, type: "invalid_request_error", code: "request_too_large" } }, 413),
  });
  for (const path of MODEL_ROUTED_PATHS) {
    app.post(path, limit, (c) => handleModelRequest(c, path));
  }

  async function handleModelRequest(c: Context, path: string): Promise<Response> {
    const raw = c.req.raw;
    const text = await raw.text();
    let body: Record<string, unknown>;
    try {
      const parsed = text ? JSON.parse(text) : {};
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      body = parsed;
    } catch {
      return openAiErrorResponse(new ApiError("VALIDATION_ERROR", "The request body must be a JSON object"));
    }
    let model: ModelRow;
    try {
      model = selectModel(s, body.model);
    } catch (err) {
      return openAiErrorResponse(err as ApiError);
    }
    const streaming = body.stream === true;
    const stat = s.requests.begin(model.id, path);
    const started = performance.now();
    const url = new URL(raw.url);
    return forward({
      c, model, streaming, stat, started,
      upstreamPath: url.pathname + url.search,
      routedPath: path,
      init: { method: "POST", headers: upstreamRequestHeaders(raw.headers), body: text },
      onDone: () => touch(model.id),
    });
  }

  // Raw passthrough to one model's own server (its web UI, /props, /slots, /metrics ...).
  app.all("/upstream/:id/*", limit, async (c) => {
    const id = c.req.param("id");
    const row = s.registry.resolve(id);
    if (!row) return c.json({ error: { message: `Unknown model '${id}'`, type: "invalid_request_error", code: "model_not_found" } }, 404);
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

  interface ForwardArgs {
    c: Context;
    model: ModelRow;
    streaming: boolean;
    stat: ReturnType<Services["requests"]["begin"]> | null;
    started: number;
    upstreamPath: string;
    /** The model-routed endpoint (absent for /upstream passthrough, which is never rewritten). */
    routedPath?: string;
    init: { method: string; headers: Headers; body?: string | ArrayBuffer };
    onDone?: () => void;
  }

  async function forward(a: ForwardArgs): Promise<Response> {
    const clientSignal = a.c.req.raw.signal;
    const upstreamAbort = new AbortController();
    const onClientAbort = () => upstreamAbort.abort(new Error("client disconnected"));
    clientSignal.addEventListener("abort", onClientAbort, { once: true });
    const endStat = (o: Parameters<NonNullable<ForwardArgs["stat"]>["end"]>[0]) => a.stat?.end(o);

    const leaseP = pool.acquire(a.model.id, clientSignal);
    leaseP.catch(() => {}); // handled below, whichever way we wait for it

    // A streaming client waiting for a load gets an early 200 SSE response carrying keep-alive
    // comments, so neither it nor a reverse proxy in between times out during a long load.
    // (Only when the model is not running yet: the common case pays for no timer.)
    if (a.streaming && a.stat && s.supervisor.runtimeOf(a.model.id)?.state !== "running") {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const early = await Promise.race([
        leaseP.then(() => "ready" as const, () => "ready" as const),
        new Promise<"slow">((resolve) => (timer = setTimeout(() => resolve("slow"), options.loadingCommentAfterMs))),
      ]);
      clearTimeout(timer);
      if (early === "slow") return loadingStream(a, leaseP, upstreamAbort, endStat);
    }

    let lease: Lease;
    try {
      lease = await leaseP;
    } catch (err) {
      clientSignal.removeEventListener("abort", onClientAbort);
      if (clientSignal.aborted) {
        // The client left while waiting: not a server error (499, as for a mid-stream abort).
        endStat({ status: 499, error: false });
        return new Response(null, { status: 499 });
      }
      const apiErr = toApiError(err);
      endStat({ status: apiErr.status, error: true });
      return openAiErrorResponse(apiErr);
    }
    return relay(a, lease, upstreamAbort, endStat, () => clientSignal.removeEventListener("abort", onClientAbort));
  }

  /** Sends the request upstream and relays the response; always releases the lease once. */
  async function relay(
    a: ForwardArgs,
    lease: Lease,
    upstreamAbort: AbortController,
    endStat: (o: Parameters<NonNullable<ForwardArgs["stat"]>["end"]>[0]) => void,
    cleanup: () => void,
  ): Promise<Response> {
    const prepared = await beforeForward(a, lease, upstreamAbort.signal);
    const init = prepared ? { ...a.init, body: prepared.body } : a.init;
    let upstream: Response;
    try {
      upstream = await fetchUpstream(lease.baseUrl + a.upstreamPath, init, upstreamAbort.signal);
    } catch (err) {
      prepared?.done({ failed: true });
      lease.release();
      cleanup();
      const aborted = upstreamAbort.signal.aborted;
      endStat({ status: aborted ? 499 : 502, error: !aborted });
      return Response.json(
        { error: { message: `llama-server for ${a.model.id} did not answer: ${(err as Error).message}`, type: "server_error", code: "upstream_unavailable" } },
        { status: 502 },
      );
    }
    const isSse = (upstream.headers.get("content-type") ?? "").includes("text/event-stream");
    const status = upstream.status;
    if (!upstream.body) {
      prepared?.done({ failed: true });
      lease.release();
      cleanup();
      endStat({ status });
      a.onDone?.();
      return new Response(null, { status, headers: downstreamResponseHeaders(upstream.headers, false) });
    }
    let ttftMs: number | undefined;
    const body = passThrough(
      upstream.body,
      {
        onFirstChunk: () => (ttftMs = performance.now() - a.started),
        onEnd: (o) => {
          prepared?.done({ cacheN: o.cacheN, promptN: o.promptN, failed: o.failed || o.aborted || status >= 400 });
          lease.release();
          cleanup();
          endStat({
            status: o.aborted ? 499 : o.failed ? 502 : status,
            error: o.failed || status >= 400,
            ttftMs,
            promptTokens: o.promptTokens,
            completionTokens: o.completionTokens,
            generationMs: o.generationMs,
          });
          a.onDone?.();
        },
      },
      { sse: isSse, upstreamAbort },
    );
    return new Response(body, { status, headers: downstreamResponseHeaders(upstream.headers, isSse || a.streaming) });
  }

  /**
   * Named seam before forwarding (lease held, model running): the KV cache may restore a saved
   * prompt into a free slot and pin the request to it (`id_slot`). Null = forward as received.
   */
  async function beforeForward(a: ForwardArgs, lease: Lease, signal: AbortSignal) {
    if (!a.routedPath || typeof a.init.body !== "string") return null;
    return s.kvcache.prepareRequest({ modelId: a.model.id, baseUrl: lease.baseUrl, path: a.routedPath, body: a.init.body, signal });
  }

  /** The early-committed SSE response for a stream whose model is still loading. */
  function loadingStream(
    a: ForwardArgs,
    leaseP: Promise<Lease>,
    upstreamAbort: AbortController,
    endStat: (o: Parameters<NonNullable<ForwardArgs["stat"]>["end"]>[0]) => void,
  ): Response {
    const since = performance.now();
    let timer: ReturnType<typeof setInterval> | undefined;
    let upstreamReader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const enqueue = (b: Uint8Array) => { if (!cancelled) try { controller.enqueue(b); } catch {} };
        const close = () => { if (!cancelled) try { controller.close(); } catch {} };
        const comment = () => {
          const secs = Math.round((performance.now() - since) / 1000);
          enqueue(encoder.encode(`: loading ${a.model.id} ${secs}s\n\n`));
        };
        comment();
        timer = setInterval(comment, options.loadingCommentEveryMs);
        leaseP.then(
          async (lease) => {
            clearInterval(timer);
            const res = await relay(a, lease, upstreamAbort, endStat, () => {});
            if (!res.body) return close();
            if (res.status >= 400) {
              // Headers are gone already: report the upstream's error as an SSE error event.
              const text = await res.text();
              enqueue(encoder.encode(`data: ${text.trim() || JSON.stringify({ error: { message: `upstream status ${res.status}` } })}\n\n`));
              return close();
            }
            upstreamReader = res.body.getReader();
            try {
              for (;;) {
                const { value, done } = await upstreamReader.read();
                if (done) break;
                enqueue(value);
              }
              close();
            } catch {
              // Client cancelled (cancel() below) or the relay already reported the failure.
              close();
            }
          },
          (err) => {
            clearInterval(timer);
            if (cancelled) return endStat({ status: 499, error: false });
            const apiErr = toApiError(err);
            endStat({ status: apiErr.status, error: true });
            enqueue(sseError(apiErr.details ? `${apiErr.message}: ${apiErr.details}` : apiErr.message, openAiType(apiErr.code), apiErr.status));
            close();
          },
        );
      },
      cancel() {
        cancelled = true;
        clearInterval(timer);
        upstreamAbort.abort(new Error("client disconnected"));
        upstreamReader?.cancel().catch(() => {});
      },
    });
    return new Response(stream, {
      status: 200,
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no" },
    });
  }

  return app;
}

/**
 * A pooled keep-alive connection that llama-server has already closed fails at once with
 * ECONNRESET (cpp-httplib closes some connections right after a streamed response; Bun may pick
 * such a socket before it sees the FIN: ~15% of back-to-back streams in bench runs). The request
 * never reached the server, so it is sent again once, on a fresh connection.
 */
export async function fetchUpstream(url: string, init: { method: string; headers: Headers; body?: string | ArrayBuffer }, signal: AbortSignal): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal, redirect: "manual" });
  } catch (err) {
    if (signal.aborted || !isStaleConnection(err)) throw err;
    return fetch(url, { ...init, signal, redirect: "manual", keepalive: false });
  }
}

function isStaleConnection(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === "ECONNRESET" || /socket connection was closed unexpectedly/i.test(e?.message ?? "");
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const message = (err as Error)?.message ?? String(err);
  if ((err as Error)?.name === "AbortError" || /aborted|client disconnected/i.test(message)) {
    return new ApiError("SERVICE_UNAVAILABLE", "Request cancelled while waiting for the model");
  }
  return new ApiError("SERVICE_UNAVAILABLE", "The model could not be started", message);
}
