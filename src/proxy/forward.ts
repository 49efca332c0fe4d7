import { ApiError } from "../http/errors";
import { sseErrorEvent } from "../http/openai";
import type { RequestOutcome } from "./stats";

/** Hop-by-hop headers (RFC 9110 7.6.1) and ones fetch must compute itself. */
const DROP_REQUEST_HEADERS = new Set([
  "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
  "host", "content-length", "authorization", "x-api-key", "cookie", "accept-encoding",
]);
const DROP_RESPONSE_HEADERS = new Set([
  "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server",
  "access-control-allow-origin",
]);

export function upstreamRequestHeaders(incoming: Headers): Headers {
  const out = new Headers();
  incoming.forEach((value, key) => {
    if (!DROP_REQUEST_HEADERS.has(key)) out.set(key, value);
  });
  return out;
}

export function downstreamResponseHeaders(upstream: Headers, streaming: boolean): Headers {
  const out = new Headers();
  upstream.forEach((value, key) => {
    if (!DROP_RESPONSE_HEADERS.has(key)) out.set(key, value);
  });
  if (streaming) {
    // Tell nginx & co. not to buffer, and caches not to keep, a token stream.
    out.set("cache-control", "no-cache");
    out.set("x-accel-buffering", "no");
  }
  return out;
}

/** Token counts and generation time, read from the last events of a response (see TailWindow). */
export interface UsageFromTail {
  promptTokens?: number;
  completionTokens?: number;
  generationMs?: number;
  /** llama-server's timings.prompt_n: prompt tokens it had to process (cachedTokens came from its cache). */
  promptN?: number;
  /** Prompt tokens served from llama-server's cache (timings.cache_n, or usage's cached_tokens). */
  cachedTokens?: number;
  /** llama-server's timings.prompt_per_second and predicted_per_second. */
  promptPerSecond?: number;
  predictedPerSecond?: number;
}

const lastNumber = (text: string, key: string): number | undefined => {
  const re = new RegExp(`"${key}":\\s*(-?[0-9.]+(?:[eE][-+]?\\d+)?)`, "g");
  let m: RegExpExecArray | null;
  let last: string | undefined;
  while ((m = re.exec(text))) last = m[1];
  return last === undefined ? undefined : Number(last);
};

/**
 * Reads usage/timings from the end of a response body without parsing every chunk: OpenAI's
 * `usage` (prompt_tokens, completion_tokens) when present, else llama-server's `timings`
 * (prompt_n + cache_n, predicted_n); generation time from timings.predicted_ms.
 */
export function parseUsage(tail: string): UsageFromTail {
  const usageAt = tail.lastIndexOf('"usage"');
  const timingsAt = tail.lastIndexOf('"timings"');
  const out: UsageFromTail = {};
  if (usageAt >= 0) {
    const u = tail.slice(usageAt, usageAt + 400);
    out.promptTokens = lastNumberFirst(u, "prompt_tokens");
    out.completionTokens = lastNumberFirst(u, "completion_tokens");
    out.cachedTokens = lastNumberFirst(u, "cached_tokens");
  }
  if (timingsAt >= 0) {
    const t = tail.slice(timingsAt, tail.indexOf("}", timingsAt) + 1 || undefined);
    const predictedN = lastNumber(t, "predicted_n");
    const promptN = lastNumber(t, "prompt_n");
    const cacheN = lastNumber(t, "cache_n");
    out.generationMs = lastNumber(t, "predicted_ms");
    if (promptN !== undefined) out.promptN = promptN;
    out.completionTokens ??= predictedN;
    if (cacheN !== undefined) out.cachedTokens = cacheN;
    out.promptPerSecond = lastNumber(t, "prompt_per_second");
    out.predictedPerSecond = lastNumber(t, "predicted_per_second");
    if (out.promptTokens === undefined && promptN !== undefined) out.promptTokens = promptN + (cacheN ?? 0);
  }
  return out;
}

function lastNumberFirst(text: string, key: string): number | undefined {
  const m = text.match(new RegExp(`"${key}":\\s*(\\d+)`));
  return m ? Number(m[1]) : undefined;
}

/** Keeps references to the last chunks of a stream (no copies) so usage can be read at the end. */
class TailWindow {
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  constructor(private readonly keepBytes = 8192) {}
  push(chunk: Uint8Array) {
    this.chunks.push(chunk);
    this.bytes += chunk.byteLength;
    while (this.chunks.length > 1 && this.bytes - this.chunks[0]!.byteLength >= this.keepBytes) {
      this.bytes -= this.chunks.shift()!.byteLength;
    }
  }
  text(): string {
    return new TextDecoder().decode(Buffer.concat(this.chunks));
  }
}

export interface PassThroughHooks {
  /** Called once, when the stream has ended, failed or been cancelled by the client. */
  onEnd(outcome: Omit<RequestOutcome, "status"> & UsageFromTail & { aborted: boolean; failed: boolean }): void;
  /** Called with the first body chunk (time to first token). */
  onFirstChunk?(): void;
  /** Called for every body chunk (the live queue's "tokens so far"); keep it to a counter. */
  onChunk?(): void;
  /**
   * When the upstream read fails because upstreamAbort was aborted on purpose (an operator's
   * cancel), the SSE error event to send instead of "upstream closed the stream".
   */
  abortedMessage?(reason: unknown): string | null;
}

/**
 * Streams an upstream body to the client chunk by chunk, unchanged and unbuffered, and learns
 * the request's outcome on the way: time of the first chunk, usage from the tail, and whether
 * the stream ended cleanly. An upstream that dies mid-stream ends the client's stream with an
 * SSE error event (for event streams) instead of hanging; a client that goes away cancels the
 * upstream read, which closes the upstream connection so llama-server stops generating.
 */
export function passThrough(
  body: ReadableStream<Uint8Array>,
  hooks: PassThroughHooks,
  opts: { sse: boolean; upstreamAbort: AbortController; /** Who is upstream, for the error event ("llama-server", "peer b"). */ upstreamName?: string },
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const tail = new TailWindow();
  let first = true;
  let finished = false;
  const finish = (aborted: boolean, failed: boolean) => {
    if (finished) return;
    finished = true;
    const usage = parseUsage(tail.text());
    hooks.onEnd({ ...usage, aborted, failed });
  };

  // A Bun "direct" stream: chunks are written straight to the response sink, with no queue and
  // no promise per chunk on our side (A/B on the real llama-server: ~0.94 of direct throughput
  // against ~0.91 for a pull-based ReadableStream).
  const source = {
    type: "direct" as const,
    async pull(controller: DirectController) {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (first) {
            first = false;
            hooks.onFirstChunk?.();
          }
          hooks.onChunk?.();
          tail.push(value);
          controller.write(value);
          controller.flush();
        }
        finish(false, false);
      } catch (err) {
        if (!finished) {
          // Upstream died mid-stream: say so in-band (SSE clients parse `data:` events), then end.
          const cancelled = opts.upstreamAbort.signal.aborted ? hooks.abortedMessage?.(opts.upstreamAbort.signal.reason) : null;
          if (opts.sse) {
            const error = cancelled
              ? new ApiError("REQUEST_CANCELLED", cancelled)
              : new ApiError("UPSTREAM_UNAVAILABLE", `upstream ${opts.upstreamName ?? "llama-server"} closed the stream`, (err as Error).message);
            controller.write(sseErrorEvent(error));
          }
          finish(!!cancelled, !cancelled);
          // A JSON body cut short must not look complete: fail the response instead of ending it.
          if (!opts.sse) throw err;
        }
      }
      controller.close();
    },
    cancel() {
      // The client went away: stop reading and abort the upstream request.
      finish(true, false);
      opts.upstreamAbort.abort(new Error("client disconnected"));
      reader.cancel().catch(() => {});
    },
  };
  return new ReadableStream(source as unknown as UnderlyingDefaultSource<Uint8Array>);
}

/** The controller Bun hands a `type: "direct"` ReadableStream source. */
interface DirectController {
  write(chunk: Uint8Array | string): number | Promise<number>;
  flush(): number | Promise<number> | void;
  close(): void;
}
