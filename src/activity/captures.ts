/**
 * Request/response captures: the bodies of proxied requests, kept in memory for debugging from
 * an activity row. The single owner of every capture. Off unless `captureMaxMB` > 0.
 *
 * What is kept: the request body as the client sent it, the response body as it was relayed to
 * the client (for a stream: the text of the stream, chunk by chunk, as it went out), the route,
 * model, status and content types. Never a header, so never an Authorization or X-API-Key value.
 *
 * Memory: every kept byte counts against captureMaxMB (read per use, so a hot reload applies at
 * once; 0 drops everything). Each body keeps at most half of the bound (a body beyond that keeps
 * its start and a truncation marker), so one capture never exceeds the bound; past the bound the
 * oldest captures are evicted, finished or not. A streamed response is counted as it grows.
 */
import type { EventBus } from "../events";

export const MIB = 1024 * 1024;

export interface CapturedBody {
  /** The kept text (UTF-8 decoded), ending with TRUNCATION_MARKER(...) when `truncated`. */
  text: string;
  /** Bytes the body had in all (kept or not). */
  bytes: number;
  /** Bytes kept in `text` (what counts against the bound). */
  keptBytes: number;
  truncated: boolean;
  contentType: string | null;
}

export interface Capture {
  requestId: string;
  /** ISO time the request was captured. */
  time: string;
  route: string;
  model: string | null;
  status: number | null;
  /** The response was an event stream (text/event-stream or x-ndjson). */
  streamed: boolean;
  /** False while the response is still being relayed, or when the client left before its end. */
  complete: boolean;
  request: CapturedBody;
  response: CapturedBody;
}

export const truncationMarker = (droppedBytes: number) => `\n[... truncated: ${droppedBytes} more bytes not kept]`;

/** What the route knows before the response: who the capture is for. */
export interface CaptureMeta {
  requestId: string;
  route: string;
  model: string | null;
  requestContentType?: string | null;
  /**
   * The client's request signal. When the client leaves, the relay aborts upstream and ends the
   * stream it hands us normally, so "the stream ended" alone does not mean the client got it all.
   */
  clientSignal?: AbortSignal;
}

interface Entry {
  capture: Capture;
  /** Response bytes kept so far (joined when the capture is read or finished). */
  chunks: Uint8Array[];
  evicted: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class CaptureStore {
  /** Insertion order is age: the first entry is the oldest, evicted first. */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    /** The bound in bytes (captureMaxMB * MiB); read per use. */
    private readonly maxBytes: () => number,
    bus?: EventBus,
  ) {
    // A lowered (or zeroed) bound applies at once, not only at the next capture.
    bus?.on("config.changed", () => this.trim());
  }

  get enabled(): boolean {
    return this.maxBytes() > 0;
  }

  /** How many captures are kept and the bytes they use. */
  stats(): { captures: number; bytes: number; maxBytes: number } {
    return { captures: this.entries.size, bytes: this.bytes, maxBytes: this.maxBytes() };
  }

  get(requestId: string): Capture | undefined {
    const e = this.entries.get(requestId);
    if (!e) return undefined;
    return { ...e.capture, response: { ...e.capture.response, text: this.responseText(e) } };
  }

  has(requestId: string): boolean {
    return this.entries.has(requestId);
  }

  /**
   * Captures one answered request: the request body now, the response as it is relayed. Returns
   * the response to send (its body teed into the capture), or `res` itself when captures are off.
   */
  capture(meta: CaptureMeta, requestBody: string | null, res: Response): Response {
    const max = this.maxBytes();
    if (max <= 0) return res;
    const half = Math.floor(max / 2);
    const contentType = res.headers.get("content-type");
    const streamed = /text\/event-stream|ndjson/i.test(contentType ?? "");
    const entry: Entry = {
      capture: {
        requestId: meta.requestId,
        time: new Date().toISOString(),
        route: meta.route,
        model: meta.model,
        status: res.status,
        streamed,
        complete: false,
        request: keepText(requestBody ?? "", half, meta.requestContentType ?? null),
        response: { text: "", bytes: 0, keptBytes: 0, truncated: false, contentType },
      },
      chunks: [],
      evicted: false,
    };
    // A request id reused by a client: the newest request with it wins.
    this.drop(meta.requestId);
    this.entries.set(meta.requestId, entry);
    this.bytes += entry.capture.request.keptBytes;
    this.trim();
    if (!res.body) {
      entry.capture.complete = true;
      return res;
    }
    const reader = res.body.getReader();
    const response = entry.capture.response;
    const body = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (err) {
          this.end(entry, false);
          controller.error(err);
          return;
        }
        if (chunk.done) {
          this.end(entry, !meta.clientSignal?.aborted);
          controller.close();
          return;
        }
        const value = chunk.value;
        response.bytes += value.byteLength;
        if (!entry.evicted) {
          const room = half - response.keptBytes;
          if (room > 0) {
            // Chunks are not reused once read, so the kept one is the relayed one (no copy).
            const kept = value.byteLength <= room ? value : value.subarray(0, room);
            entry.chunks.push(kept);
            response.keptBytes += kept.byteLength;
            this.bytes += kept.byteLength;
            if (this.bytes > this.maxBytes()) this.trim();
          }
        }
        controller.enqueue(value);
      },
      cancel: (reason) => {
        // The client left: what was relayed so far stays, marked incomplete.
        this.end(entry, false);
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  }

  private end(entry: Entry, complete: boolean): void {
    const r = entry.capture.response;
    r.truncated = r.bytes > r.keptBytes;
    entry.capture.complete = complete;
    // Joined once, so reading a capture later costs no copy of many small chunks, and no kept
    // view holds on to a bigger buffer than the bytes it counts.
    const only = entry.chunks.length === 1 ? entry.chunks[0]! : undefined;
    if (entry.chunks.length > 1 || (only && only.buffer.byteLength !== only.byteLength)) {
      const joined = new Uint8Array(r.keptBytes);
      let at = 0;
      for (const c of entry.chunks) {
        joined.set(c, at);
        at += c.byteLength;
      }
      entry.chunks = [joined];
    }
  }

  private responseText(e: Entry): string {
    const r = e.capture.response;
    let text = "";
    for (const c of e.chunks) text += decoder.decode(c, { stream: true });
    text += decoder.decode();
    return r.bytes > r.keptBytes ? text + truncationMarker(r.bytes - r.keptBytes) : text;
  }

  /** Evicts the oldest captures until the kept bytes fit the bound (all of them when it is 0). */
  private trim(): void {
    const max = this.maxBytes();
    for (const [id] of this.entries) {
      if (this.bytes <= max && max > 0) break;
      this.drop(id);
    }
  }

  private drop(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    e.evicted = true;
    this.bytes -= e.capture.request.keptBytes + e.capture.response.keptBytes;
    e.chunks = [];
  }
}

/** A body as text, cut to `maxBytes` (UTF-8) with a marker saying how much was left out. */
export function keepText(text: string, maxBytes: number, contentType: string | null): CapturedBody {
  const bytes = encoder.encode(text);
  if (bytes.byteLength <= maxBytes) return { text, bytes: bytes.byteLength, keptBytes: bytes.byteLength, truncated: false, contentType };
  const kept = bytes.subarray(0, Math.max(0, maxBytes));
  // A cut inside a multi-byte character decodes to U+FFFD: the text stays valid.
  return { text: decoder.decode(kept) + truncationMarker(bytes.byteLength - kept.byteLength), bytes: bytes.byteLength, keptBytes: kept.byteLength, truncated: true, contentType };
}

/**
 * Captures one answered request when captures are on, keyed by the X-Request-Id its answer
 * carries (every model route sets it); the answer itself, untouched, when they are off. `req` is
 * the client's request (its Content-Type and abort signal: never its other headers).
 */
export function captureAnswer(store: CaptureStore, req: Request, route: string, requestBody: string | null, res: Response, model?: string | null): Response {
  if (!store.enabled) return res;
  const requestId = res.headers.get("x-request-id");
  if (!requestId) return res;
  return store.capture(
    { requestId, route, model: model !== undefined ? model : modelOf(requestBody), requestContentType: req.headers.get("content-type"), clientSignal: req.signal },
    requestBody,
    res,
  );
}

/** The `model` a JSON body names (a capture's label), without failing on any body. */
function modelOf(body: string | null): string | null {
  if (!body) return null;
  try {
    const m = (JSON.parse(body) as { model?: unknown }).model;
    return typeof m === "string" ? m.slice(0, 200) : null;
  } catch {
    return null;
  }
}
