/**
 * The live request queue: the single owner of "which proxied requests exist right now". The
 * proxy route begins one entry per request (queued or loading), the relay marks it leased
 * (running) and counts its chunks, and the entry ends once with the outcome, which becomes an
 * activity row. POST /api/requests/:id/cancel aborts an entry's signal: the relay stops waiting
 * or aborts the upstream fetch (llama-server stops generating) and answers the client with a
 * clean error.
 *
 * Nothing here does I/O. Changes are announced on the bus as "requests.changed" (begin, lease,
 * end, cancel; never per chunk), finished rows go to `sink` (the batched SQLite writer).
 */
import type { EventBus } from "../events";
import type { NewActivityRow } from "../db/schema";
import { activityRow, type FinishedOutcome } from "./record";

export type LiveState = "queued" | "loading" | "running";

/** The abort reason of a cancelled request, so every layer can tell it from a client disconnect. */
export class CancelledError extends Error {
  constructor(readonly requestId: string, why = "by an operator") {
    super(`Request ${requestId} was cancelled ${why}`);
    this.name = "CancelledError";
  }
}

export interface TrackInit {
  /** A valid incoming X-Request-Id (acceptRequestId), else null and one is made. */
  requestId: string | null;
  model: string;
  route: string;
  streaming: boolean;
  client: string | null;
  keyName: string | null;
  sessionId: string | null;
  rewritten: string[];
  /** Whether the model was running when the request arrived (else it waits for a load). */
  modelRunning: boolean;
}

export interface LiveRequest {
  id: string;
  model: string;
  route: string;
  state: LiveState;
  /** 1-based place among the requests waiting for this model; null once running. */
  position: number | null;
  /** ISO time of arrival. */
  since: string;
  ageMs: number;
  /** Upstream chunks received so far (one per token for llama-server's streams). */
  tokens: number;
  streaming: boolean;
  client: string | null;
  key: string | null;
  sessionId: string | null;
}

/** The live queue with its counts: GET /api/requests and the `requests` realtime topic. */
export interface QueueSnapshot {
  requests: LiveRequest[];
  total: number;
  queued: number;
  loading: number;
  running: number;
}

export function queueSnapshot(requests: LiveRequest[]): QueueSnapshot {
  return {
    requests,
    total: requests.length,
    queued: requests.filter((r) => r.state === "queued").length,
    loading: requests.filter((r) => r.state === "loading").length,
    running: requests.filter((r) => r.state === "running").length,
  };
}

/**
 * What identifies a queue's state for "did it change": ids, states, positions and tokens, not
 * the age (which changes every millisecond; a client computes it from `since`).
 */
export function queueFingerprint(requests: readonly LiveRequest[]): string {
  return requests.map((r) => `${r.id}|${r.state}|${r.position ?? ""}|${r.tokens}`).join("\n");
}

interface Entry {
  init: TrackInit;
  id: string;
  ts: number;
  started: number;
  state: LiveState;
  leasedAt?: number;
  chunks: number;
  abort: AbortController;
  ended: boolean;
}

export interface RequestHandle {
  readonly id: string;
  /** Aborted (reason: CancelledError) when an operator cancels the request. */
  readonly signal: AbortSignal;
  /** The request got a slot on a running model. */
  leased(): void;
  /** One upstream chunk relayed. Hot path: a counter, nothing else. */
  chunk(): void;
  /** Ends the entry (idempotent) and records its activity row. */
  finish(o: FinishedOutcome): void;
}

let counter = 0;
const newId = () => `req_${Date.now().toString(36)}${(++counter).toString(36).padStart(4, "0")}${Math.random().toString(36).slice(2, 6)}`;

export class RequestTracker {
  private readonly live = new Map<string, Entry>();

  constructor(
    private readonly bus: EventBus,
    private readonly sink: (row: NewActivityRow) => void,
  ) {}

  begin(init: TrackInit): RequestHandle {
    // A client-chosen id is honoured unless a live request already has it (ids must stay
    // unique for cancel): then it gets one of ours.
    const id = init.requestId && !this.live.has(init.requestId) ? init.requestId : newId();
    const e: Entry = {
      init, id, ts: Date.now(), started: performance.now(),
      state: init.modelRunning ? "queued" : "loading",
      chunks: 0, abort: new AbortController(), ended: false,
    };
    this.live.set(id, e);
    this.changed("begin", id, init.model);
    return {
      id,
      signal: e.abort.signal,
      leased: () => {
        if (e.ended || e.state === "running") return;
        e.state = "running";
        e.leasedAt = performance.now();
        this.changed("running", id, init.model);
      },
      chunk: () => {
        e.chunks++;
      },
      finish: (o) => this.end(e, o),
    };
  }

  /** Records a request that never reached a model (bad body, unknown model): no live entry. */
  rejected(init: Omit<TrackInit, "modelRunning" | "model"> & { model: string | null }, o: FinishedOutcome): string {
    const id = init.requestId ?? newId();
    this.sink(activityRow({ ...init, requestId: id, ts: Date.now(), waitedForLoad: false, waitMs: 0, durationMs: 0 }, o));
    return id;
  }

  private end(e: Entry, o: FinishedOutcome) {
    if (e.ended) return;
    e.ended = true;
    this.live.delete(e.id);
    const now = performance.now();
    this.sink(
      activityRow(
        {
          requestId: e.id, ts: e.ts, model: e.init.model, route: e.init.route, client: e.init.client,
          keyName: e.init.keyName, sessionId: e.init.sessionId, streaming: e.init.streaming,
          waitedForLoad: !e.init.modelRunning,
          waitMs: e.leasedAt === undefined ? undefined : e.leasedAt - e.started,
          durationMs: now - e.started, rewritten: e.init.rewritten,
        },
        o,
      ),
    );
    this.changed("end", e.id, e.init.model);
  }

  /** Cancels a live request. False when no request has that id (it may have just finished). */
  cancel(id: string): boolean {
    const e = this.live.get(id);
    if (!e || e.ended) return false;
    e.abort.abort(new CancelledError(id));
    this.changed("cancel", id, e.init.model);
    return true;
  }

  /**
   * Cancels every live request (shutdown): each client gets the same clean error as an operator's
   * cancel (an SSE error event mid-stream, OpenAI's error before the headers) instead of a cut
   * connection. Returns how many were cancelled.
   */
  cancelAll(why: string): number {
    let n = 0;
    for (const e of this.live.values()) {
      if (e.ended) continue;
      e.abort.abort(new CancelledError(e.id, why));
      this.changed("cancel", e.id, e.init.model);
      n++;
    }
    return n;
  }

  /** Every live request, oldest first, with queue positions per model. */
  list(filter: { model?: string } = {}): LiveRequest[] {
    const now = performance.now();
    const wall = Date.now();
    const waiting = new Map<string, number>();
    const out: LiveRequest[] = [];
    // Map iteration is insertion order = arrival order, which is the pool's FIFO order.
    for (const e of this.live.values()) {
      if (filter.model && e.init.model !== filter.model) continue;
      let position: number | null = null;
      if (e.state !== "running") {
        position = (waiting.get(e.init.model) ?? 0) + 1;
        waiting.set(e.init.model, position);
      }
      out.push({
        id: e.id, model: e.init.model, route: e.init.route, state: e.state, position,
        since: new Date(wall - (now - e.started)).toISOString(), ageMs: Math.round(now - e.started),
        tokens: e.chunks, streaming: e.init.streaming, client: e.init.client, key: e.init.keyName, sessionId: e.init.sessionId,
      });
    }
    return out;
  }

  get size(): number {
    return this.live.size;
  }

  private changed(reason: "begin" | "running" | "end" | "cancel", id: string, model: string) {
    this.bus.emit("requests.changed", { reason, id, model });
  }
}
