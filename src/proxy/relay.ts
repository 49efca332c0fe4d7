// The relay: a request that has chosen its model waits for a lease from the pool, goes to that
// model's llama-server, and its response streams back with statistics recorded at the end. Plain
// functions (no Hono app of their own) so that every route that forwards (the /v1 and native
// endpoints, the raw /upstream passthrough) shares one path; proxy/routes.ts only parses and picks
// the model.
import type { Context } from "hono";
import { keepIdleTimeoutLifted } from "../http/connection-timeout";
import { addChildAuth } from "../supervisor/child-keys";
import type { ModelRow } from "../db/schema";
import { ApiError } from "../http/errors";
import { openAiErrorResponse, sseErrorEvent } from "../http/openai";
import type { AcquireOptions, Lease, ModelPool } from "../supervisor/pool";
import { CancelledError, type RequestHandle } from "../activity/tracker";
import { downstreamResponseHeaders, passThrough, type PassThroughHooks } from "./forward";
import type { ProxyOptions } from "./options";
import type { RequestOutcome, RequestStats } from "./stats";

/** What the relay needs from the rest of the process. */
export interface RelayDeps {
  pool: ModelPool;
  /** Whether the model's server is up already (then no loading timer is armed). */
  isRunning: (modelId: string) => boolean;
  options: ProxyOptions;
  /**
   * Named seam before forwarding (lease held, model running). The KV cache uses it to restore a
   * saved prompt into a free slot and pin the request there (`id_slot`); null = send as received.
   * `done` hears how the answer ended, with llama-server's timings.cache_n / prompt_n.
   */
  beforeForward?: (a: ForwardArgs, lease: Lease, signal: AbortSignal) => Promise<PreparedForward | null>;
}

/** A body to send instead of the client's, and who wants to hear how the answer went. */
export interface PreparedForward {
  body: string;
  done(outcome: { cacheN?: number; promptN?: number; failed?: boolean }): void;
}

type RequestStat = ReturnType<RequestStats["begin"]>;
type EndStat = (o: RequestOutcome) => void;

const encoder = new TextEncoder();

/** One request on its way to a model: what forward() needs from the route that took it. */
export interface ForwardArgs {
  c: Context;
  model: ModelRow;
  streaming: boolean;
  /** The request's statistics entry (null for the raw /upstream passthrough, which is not counted). */
  stat: RequestStat | null;
  started: number;
  upstreamPath: string;
  /**
   * The model-routed endpoint it came in on; for Ollama's routes the llama-server endpoint they
   * are translated to (absent for /upstream, which is never rewritten nor restored into).
   */
  routedPath?: string;
  init: { method: string; headers: Headers; body?: string | ArrayBuffer };
  onDone?: () => void;
  /**
   * The request's live-queue entry (src/activity/tracker.ts), null for the raw /upstream
   * passthrough: its signal cancels the request, and it learns the lease, chunks and outcome.
   */
  track?: RequestHandle | null;
  /** Per-request pool options (Ollama's keep_alive). */
  acquire?: AcquireOptions;
  /** Called once the lease is granted: the end of the wait for a load or a free slot. */
  onLease?: () => void;
}

/** What a client whose request an operator cancelled gets (not retried by OpenAI's clients: 4xx, not 409/429). */
export const cancelledResponse = (err: CancelledError) => openAiErrorResponse(new ApiError("REQUEST_CANCELLED", err.message));

export async function forward(deps: RelayDeps, a: ForwardArgs): Promise<Response> {
  const clientSignal = a.c.req.raw.signal;
  const upstreamAbort = new AbortController();
  const onClientAbort = () => upstreamAbort.abort(new Error("client disconnected"));
  clientSignal.addEventListener("abort", onClientAbort, { once: true });
  // The answer may stream long after this handler returned: its connection keeps no idle
  // timeout until the stream has ended (src/http/connection-timeout.ts).
  const restoreIdle = keepIdleTimeoutLifted(a.c.req.raw);
  const endStat: EndStat = (o) => {
    restoreIdle();
    a.stat?.end(o);
    a.track?.finish(o);
  };
  // An operator's cancel ends the wait for a slot like a client disconnect does, and aborts the
  // upstream request (llama-server stops generating) with a CancelledError as the reason.
  const cancelSignal = a.track?.signal;
  const waitSignal = cancelSignal ? AbortSignal.any([clientSignal, cancelSignal]) : clientSignal;
  cancelSignal?.addEventListener("abort", () => upstreamAbort.abort(cancelSignal.reason), { once: true });

  const leaseP = deps.pool.acquire(a.model.id, waitSignal, undefined, a.acquire);
  if (a.onLease) leaseP.then(a.onLease, () => {});
  leaseP.catch(() => {}); // handled below, whichever way we wait for it

  // A streaming client waiting for a load gets an early 200 SSE response carrying keep-alive
  // comments, so neither it nor a reverse proxy in between times out during a long load.
  // (Only when the model is not running yet: the common case pays for no timer.)
  if (a.streaming && a.stat && !deps.isRunning(a.model.id)) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const early = await Promise.race([
      leaseP.then(() => "ready" as const, () => "ready" as const),
      new Promise<"slow">((resolve) => (timer = setTimeout(() => resolve("slow"), deps.options.loadingCommentAfterMs))),
    ]);
    clearTimeout(timer);
    if (early === "slow") return loadingStream(deps, a, leaseP, upstreamAbort, endStat);
  }

  let lease: Lease;
  try {
    lease = await leaseP;
  } catch (err) {
    clientSignal.removeEventListener("abort", onClientAbort);
    if (cancelSignal?.reason instanceof CancelledError) {
      endStat({ status: 499, error: false, message: cancelSignal.reason.message });
      return cancelledResponse(cancelSignal.reason);
    }
    if (clientSignal.aborted) {
      // The client left while waiting: not a server error (499, as for a mid-stream abort).
      endStat({ status: 499, error: false });
      return new Response(null, { status: 499 });
    }
    const apiErr = toApiError(err);
    endStat({ status: apiErr.status, error: true, message: apiErr.details ? `${apiErr.message}: ${apiErr.details}` : apiErr.message });
    return openAiErrorResponse(apiErr);
  }
  return relay(deps, a, lease, upstreamAbort, endStat, () => clientSignal.removeEventListener("abort", onClientAbort));
}

/** Sends the request upstream and relays the response; always releases the lease once. */
async function relay(
  deps: RelayDeps,
  a: ForwardArgs,
  lease: Lease,
  upstreamAbort: AbortController,
  endStat: EndStat,
  cleanup: () => void,
): Promise<Response> {
  a.track?.leased();
  const prepared = deps.beforeForward && a.routedPath ? await deps.beforeForward(a, lease, upstreamAbort.signal) : null;
  const init = prepared ? { ...a.init, body: prepared.body } : a.init;
  let upstream: Response;
  try {
    upstream = await fetchUpstream(lease.baseUrl + a.upstreamPath, init, upstreamAbort.signal);
  } catch (err) {
    prepared?.done({ failed: true });
    lease.release();
    cleanup();
    const aborted = upstreamAbort.signal.aborted;
    const reason = upstreamAbort.signal.reason;
    if (reason instanceof CancelledError) {
      endStat({ status: 499, error: false, message: reason.message });
      return cancelledResponse(reason);
    }
    endStat({ status: aborted ? 499 : 502, error: !aborted, message: aborted ? "client disconnected" : `llama-server did not answer: ${(err as Error).message}` });
    return openAiErrorResponse(new ApiError("UPSTREAM_UNAVAILABLE", `llama-server for ${a.model.id} did not answer`, (err as Error).message));
  }
  return streamResponse(upstream, {
    started: a.started,
    streaming: a.streaming,
    upstreamAbort,
    endStat,
    track: a.track,
    // The KV cache's check of its restore reads llama-server's own timings from the answer.
    onOutcome: prepared ? (end, status) => prepared.done({ cacheN: end.cachedTokens, promptN: end.promptN, failed: end.failed || end.aborted || status >= 400 }) : undefined,
    done: () => {
      prepared?.done({ failed: true }); // no-op once onOutcome has reported (a body-less answer)
      lease.release();
      cleanup();
      a.onDone?.();
    },
  });
}

/**
 * The client's response for an upstream answer: the body streamed through unbuffered
 * (passThrough), statistics recorded and `done` called exactly once at its end. Shared by the
 * local relay and the peer relay (src/peers/relay.ts).
 */
export function streamResponse(
  upstream: Response,
  o: {
    started: number;
    streaming: boolean;
    upstreamAbort: AbortController;
    endStat: EndStat;
    done: (failed: boolean) => void;
    track?: RequestHandle | null;
    /** Response headers to add (the peer relay names the peer). */
    headers?: Record<string, string>;
    /** Who closed a stream cut short, for the statistics ("llama-server", "peer b"). */
    upstreamName?: string;
    /** Hears how the answer ended (usage and timings from its tail), before `done`. */
    onOutcome?: (end: Parameters<PassThroughHooks["onEnd"]>[0], status: number) => void;
  },
): Response {
  const { endStat, upstreamAbort } = o;
  const isSse = (upstream.headers.get("content-type") ?? "").includes("text/event-stream");
  const status = upstream.status;
  const headers = downstreamResponseHeaders(upstream.headers, upstream.body ? isSse || o.streaming : false);
  for (const [k, v] of Object.entries(o.headers ?? {})) headers.set(k, v);
  if (!upstream.body) {
    o.done(false);
    endStat({ status });
    return new Response(null, { status, headers });
  }
  let ttftMs: number | undefined;
  const body = passThrough(
    upstream.body,
    {
      onFirstChunk: () => (ttftMs = performance.now() - o.started),
      onChunk: o.track ? o.track.chunk : undefined,
      abortedMessage: (reason) => (reason instanceof CancelledError ? reason.message : null),
      onEnd: (end) => {
        o.onOutcome?.(end, status);
        o.done(end.failed);
        const reason = upstreamAbort.signal.reason;
        endStat({
          status: end.aborted ? 499 : end.failed ? 502 : status,
          error: end.failed || status >= 400,
          message: reason instanceof CancelledError ? reason.message : end.failed ? `${o.upstreamName ?? "llama-server"} closed the stream` : end.aborted ? "client disconnected" : undefined,
          ttftMs,
          promptTokens: end.promptTokens,
          cachedTokens: end.cachedTokens,
          completionTokens: end.completionTokens,
          generationMs: end.generationMs,
          promptPerSecond: end.promptPerSecond,
          predictedPerSecond: end.predictedPerSecond,
        });
      },
    },
    { sse: isSse, upstreamAbort, upstreamName: o.upstreamName },
  );
  return new Response(body, { status, headers });
}

/** The early-committed SSE response for a stream whose model is still loading. */
function loadingStream(
  deps: RelayDeps,
  a: ForwardArgs,
  leaseP: Promise<Lease>,
  upstreamAbort: AbortController,
  endStat: EndStat,
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
      timer = setInterval(comment, deps.options.loadingCommentEveryMs);
      leaseP.then(
        async (lease) => {
          clearInterval(timer);
          const res = await relay(deps, a, lease, upstreamAbort, endStat, () => {});
          if (!res.body) return close();
          if (res.status >= 400) {
            // Headers are gone already: report the upstream's error as an SSE error event.
            const text = await res.text();
            // llama-server's own error body is already OpenAI-shaped; relay it as it is.
            enqueue(encoder.encode(text.trim() ? `data: ${text.trim()}\n\n` : sseErrorEvent(new ApiError("UPSTREAM_UNAVAILABLE", `upstream status ${res.status}`))));
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
          if (err instanceof CancelledError) {
            endStat({ status: 499, error: false, message: err.message });
            enqueue(encoder.encode(sseErrorEvent(new ApiError("REQUEST_CANCELLED", err.message))));
            return close();
          }
          const apiErr = toApiError(err);
          endStat({ status: apiErr.status, error: true, message: apiErr.message });
          enqueue(encoder.encode(sseErrorEvent(apiErr)));
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

/**
 * A pooled keep-alive connection that llama-server has already closed fails at once with
 * ECONNRESET (cpp-httplib closes some connections right after a streamed response; Bun may pick
 * such a socket before it sees the FIN: ~15% of back-to-back streams in bench runs). The request
 * never reached the server, so it is sent again once, on a fresh connection.
 */
export async function fetchUpstream(url: string, init: { method: string; headers: Headers; body?: string | ArrayBuffer }, signal: AbortSignal): Promise<Response> {
  // The child's own key (the client's credentials were dropped by upstreamRequestHeaders).
  addChildAuth(url, init.headers);
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
