import type { LlamaServerConfig } from "../config/schema";
import type { EventBus } from "../events";
import { ApiError } from "../http/errors";
import type { Logger } from "../logs/logger";
import type { ModelRegistry } from "../models/registry";
import type { SupervisorApi } from "./types";

/** A granted request slot on a running model. Call release() exactly once when the request ends. */
export interface Lease {
  modelId: string;
  baseUrl: string;
  release(): void;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** Per-model bookkeeping of the pool (never process state: that is the supervisor's). */
interface ModelSlots {
  inFlight: number;
  /** Requests waiting for the model to load or for a free slot, in arrival order. */
  queue: Waiter[];
  /** Monotonic time of the last lease (LRU order) and of the last release (idle TTL). */
  lastUsed: number;
  lastReleased: number;
  idleTimer?: ReturnType<typeof setTimeout>;
  /**
   * The idle TTL the last finished request asked for (Ollama's keep_alive, seconds; Infinity =
   * keep): it decides the idle period that follows. Undefined = the configured TTL.
   */
  keepAliveSeconds?: number;
  /** Date.now() ms at which the armed idle timer stops the model; undefined when none is armed. */
  idleDeadline?: number;
}

/** Per-request options of acquire(). */
export interface AcquireOptions {
  /**
   * How long the model stays loaded once this request ends and nothing else runs (seconds;
   * 0 = stop right after, Infinity = never stop for idleness). Absent = the configured idle TTL.
   * The request that finishes last decides, as in Ollama's keep_alive.
   */
  keepAliveSeconds?: number;
}

/** The longest delay setTimeout honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface PoolOptions {
  /** Seconds a 429 tells clients to wait (Retry-After). */
  retryAfterSeconds?: number;
}

/**
 * Decides which models run: loads on demand, queues requests while a model loads or is at its
 * concurrency limit, evicts the least recently used idle model when `maxLoadedModels` is
 * reached, and stops models that stay idle past their TTL.
 *
 * Concurrency model: everything here runs on the one JS thread, so counters need no locks; but
 * "make room, then start" spans awaits, so it is serialized through `admission` to stop two
 * concurrent loads from both seeing a free place and over-filling the pool.
 */
export class ModelPool {
  private slots = new Map<string, ModelSlots>();
  /** Models this pool has asked to start and that have not finished starting. */
  private starting = new Map<string, Promise<unknown>>();
  /** Models whose start has passed admission (they occupy a place); subset of `starting`. */
  private admitted = new Set<string>();
  /** Tail of the admission chain (see class comment). */
  private admission: Promise<void> = Promise.resolve();
  /** Admissions queued on the chain and not yet through it (0 = the fast path may start at once). */
  private admissionsPending = 0;
  /** Running models chosen for eviction while busy: new requests for them queue until the swap. */
  private draining = new Set<string>();
  /** Woken whenever some model's inFlight drops to 0 (eviction waits on this). */
  private idleWaiters: Array<() => void> = [];

  constructor(
    /** Read on every use: tests (and a future hot reload) may swap the supervisor after start-up. */
    private readonly supervisorOf: () => SupervisorApi,
    private readonly registry: ModelRegistry,
    private readonly config: () => LlamaServerConfig,
    private readonly log?: Logger,
    bus?: EventBus,
    private readonly options: PoolOptions = {},
  ) {
    // A model that stops for any reason (crash, user stop) cannot serve its queue: wake the
    // waiters so each one re-checks and either triggers a new load or fails.
    bus?.on("model.status", (e) => {
      if (e.status === "error") this.failQueue(e.modelId, new ApiError("SERVICE_UNAVAILABLE", `Model ${e.modelId} failed`, e.detail));
    });
  }

  private slotsOf(modelId: string): ModelSlots {
    let s = this.slots.get(modelId);
    if (!s) this.slots.set(modelId, (s = { inFlight: 0, queue: [], lastUsed: 0, lastReleased: performance.now() }));
    return s;
  }

  /** Stops asked for models whose start is still waiting for admission (see cancelPendingStart). */
  private stopRequested = new Set<string>();

  /**
   * Called by a stop: a start of this model still waiting for room (not yet handed to the
   * supervisor) is cancelled instead of starting after the stop. Returns true if there was one.
   */
  cancelPendingStart(modelId: string): boolean {
    if (!this.starting.has(modelId) || this.admitted.has(modelId)) return false;
    this.stopRequested.add(modelId);
    return true;
  }

  /** A start of this model was accepted and has not finished (it may still be making room). */
  isStarting(modelId: string): boolean {
    return this.starting.has(modelId);
  }

  inFlight(modelId: string): number {
    return this.slots.get(modelId)?.inFlight ?? 0;
  }

  queued(modelId: string): number {
    return this.slots.get(modelId)?.queue.length ?? 0;
  }

  /**
   * Waits until `modelId` runs and has a free slot, then returns a lease. Throws ApiError:
   * RATE_LIMITED when the model's queue is full, SERVICE_UNAVAILABLE when the load fails,
   * and rejects with the signal's reason when the client goes away while waiting.
   */
  async acquire(modelId: string, signal?: AbortSignal, onWaiting?: () => void, opts: AcquireOptions = {}): Promise<Lease> {
    const cfg = this.config();
    const slots = this.slotsOf(modelId);
    const maxInFlight = cfg.maxConcurrentRequests;

    for (;;) {
      signal?.throwIfAborted();
      const rt = this.supervisorOf().runtimeOf(modelId);
      const running = rt?.state === "running" && rt.baseUrl;
      // Fast path: running, a free slot, and nobody queued ahead of us (FIFO fairness).
      const open = !this.draining.has(modelId);
      if (running && open && slots.inFlight < maxInFlight && slots.queue.length === 0) {
        return this.grant(modelId, slots, rt.baseUrl!, opts);
      }
      if (slots.queue.length >= cfg.maxQueuedRequests) {
        const retry = String(this.options.retryAfterSeconds ?? 1);
        throw new ApiError(
          "RATE_LIMITED",
          `Too many requests for model ${modelId}`,
          `${slots.inFlight} in flight and ${slots.queue.length} queued (limits ${maxInFlight} and ${cfg.maxQueuedRequests})`,
          { "Retry-After": retry },
        );
      }
      onWaiting?.();
      if (!running) {
        // Not running: (join the) load, waiting in the queue so the bound applies to loads too.
        await this.waitInQueue(slots, signal, () => this.ensureStarted(modelId));
      } else {
        await this.waitInQueue(slots, signal);
      }
      // Re-check from the top: the model may have been stopped again while we were woken.
      const after = this.supervisorOf().runtimeOf(modelId);
      if (after?.state === "running" && after.baseUrl && !this.draining.has(modelId) && slots.inFlight < maxInFlight) {
        return this.grant(modelId, slots, after.baseUrl, opts);
      }
    }
  }

  private grant(modelId: string, slots: ModelSlots, baseUrl: string, opts: AcquireOptions = {}): Lease {
    slots.inFlight++;
    slots.lastUsed = performance.now();
    if (slots.idleTimer) clearTimeout(slots.idleTimer);
    slots.idleTimer = undefined;
    slots.idleDeadline = undefined;
    let released = false;
    return {
      modelId,
      baseUrl,
      release: () => {
        if (released) return;
        released = true;
        slots.inFlight--;
        slots.keepAliveSeconds = opts.keepAliveSeconds;
        slots.lastReleased = performance.now();
        this.wakeNext(slots);
        if (slots.inFlight === 0) {
          for (const w of this.idleWaiters.splice(0)) w();
          this.armIdleTimer(modelId, slots);
        }
      },
    };
  }

  /**
   * Queues the caller until woken by a release (or by `work` finishing, for loads). The waiter
   * leaves the queue when woken, when `work` fails, or when its client aborts.
   */
  private waitInQueue(slots: ModelSlots, signal?: AbortSignal, work?: () => Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal };
      const leave = () => {
        const i = slots.queue.indexOf(waiter);
        if (i >= 0) slots.queue.splice(i, 1);
        if (waiter.onAbort) signal?.removeEventListener("abort", waiter.onAbort);
      };
      waiter.resolve = () => (leave(), resolve());
      waiter.reject = (err) => (leave(), reject(err));
      if (signal) {
        waiter.onAbort = () => waiter.reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      slots.queue.push(waiter);
      if (work) {
        work().then(
          // The load is done: every waiter of this model may proceed (up to the slot limit,
          // which acquire() re-checks); wake them all at once so none waits for a release.
          () => {
            for (const w of [...slots.queue]) w.resolve();
          },
          (err) => waiter.reject(err instanceof Error ? err : new Error(String(err))),
        );
      }
    });
  }

  /** Wakes every waiter of a model so each re-checks (used when it stops or stops draining). */
  private wakeAll(modelId: string): void {
    const slots = this.slots.get(modelId);
    if (slots) for (const w of [...slots.queue]) w.resolve();
  }

  private wakeNext(slots: ModelSlots): void {
    slots.queue[0]?.resolve();
  }

  private failQueue(modelId: string, err: Error): void {
    const slots = this.slots.get(modelId);
    if (!slots) return;
    for (const w of [...slots.queue]) w.reject(err);
  }

  /**
   * Starts `modelId` unless it runs or is starting; makes room first by stopping the least
   * recently used idle models. Concurrent callers for the same model share one start.
   */
  ensureStarted(modelId: string): Promise<unknown> {
    const existing = this.starting.get(modelId);
    if (existing) return existing;
    let started: Promise<unknown>;
    if (this.admissionsPending === 0 && this.loadedModels(modelId).length < this.config().maxLoadedModels) {
      // Fast path: there is room and nobody is ahead of us. Starting synchronously means the
      // model shows "loading" the moment the caller returns (POST /start?wait=false relies on it).
      this.admitted.add(modelId);
      started = this.supervisorOf().start(modelId);
    } else {
      started = (async () => {
        // Admission is serialized; the load itself is not (it is awaited outside the chain).
        let startPromise!: Promise<unknown>;
        this.admissionsPending++;
        const turn = this.admission.then(async () => {
          try {
            // A stop that arrived while we queued for admission wins: do not start at all.
            if (this.stopRequested.delete(modelId)) throw new ApiError("SERVICE_UNAVAILABLE", `Start of ${modelId} cancelled by a stop`);
            await this.makeRoomFor(modelId);
            if (this.stopRequested.delete(modelId)) throw new ApiError("SERVICE_UNAVAILABLE", `Start of ${modelId} cancelled by a stop`);
            this.admitted.add(modelId);
            startPromise = this.supervisorOf().start(modelId);
            // Let the supervisor register the load before the next admission counts loaded models.
            startPromise.catch(() => {});
          } finally {
            this.admissionsPending--;
          }
        });
        this.admission = turn.catch(() => {});
        await turn;
        return startPromise;
      })();
    }
    const tracked = started.then(
      (rt) => {
        this.noteStarted(modelId);
        return rt;
      },
    ).finally(() => {
      this.starting.delete(modelId);
      this.admitted.delete(modelId);
      this.stopRequested.delete(modelId);
    });
    this.starting.set(modelId, tracked);
    return tracked;
  }

  /** Models that occupy a place in the pool: running, loading, or being started by us. */
  private loadedModels(except: string): string[] {
    const ids = new Set<string>();
    for (const rt of this.supervisorOf().runtimes()) {
      // A stopping process still holds its memory; a crashed one with a restart scheduled will
      // come back on its own: both count, or the pool would overshoot maxLoadedModels.
      const occupies = rt.state === "running" || rt.state === "loading" || rt.state === "stopping" || (rt.state === "error" && rt.restartPending);
      if (rt.modelId !== except && occupies) ids.add(rt.modelId);
    }
    for (const id of this.admitted) if (id !== except) ids.add(id);
    return [...ids];
  }

  private async makeRoomFor(modelId: string): Promise<void> {
    const max = this.config().maxLoadedModels;
    let drained: string | undefined;
    try {
      await this.makeRoom(modelId, max, (id) => (drained = id));
    } finally {
      // Whatever happened, a model we drained but did not stop takes requests again.
      if (drained && this.draining.delete(drained)) this.wakeAll(drained);
    }
  }

  private async makeRoom(modelId: string, max: number, onDrain: (id: string) => void): Promise<void> {
    for (;;) {
      if (this.stopRequested.has(modelId)) return; // cancelled: evict nobody for it
      const loaded = this.loadedModels(modelId);
      if (loaded.length < max) return;
      // Least recently used first; never one with requests in flight or waiting, nor one
      // that is still loading for someone else.
      // A crashed model waiting for its restart goes first (stopping it just cancels the restart).
      const crashed = loaded.filter((id) => this.supervisorOf().runtimeOf(id)?.state === "error" && this.queued(id) === 0);
      const candidates = [
        ...crashed,
        ...loaded
          .filter(
            (id) =>
              this.supervisorOf().runtimeOf(id)?.state === "running" &&
              this.inFlight(id) === 0 &&
              // A drained model's queue waits for this swap; it does not keep the model up.
              (this.queued(id) === 0 || this.draining.has(id)),
          )
          .sort((a, b) => (this.slots.get(a)?.lastUsed ?? 0) - (this.slots.get(b)?.lastUsed ?? 0)),
      ];
      const victim = candidates[0];
      if (victim) {
        this.log?.info(`Stopping ${victim} to make room for ${modelId} (maxLoadedModels ${max})`);
        await this.supervisorOf().stop(victim);
        // Requests that queued for it while it drained now (re)load it, behind this admission.
        if (this.draining.delete(victim)) this.wakeAll(victim);
        continue;
      }
      // Every loaded model is busy. Drain the least recently used one: its requests in flight
      // finish, new ones queue behind this swap, so steady traffic to it cannot starve us.
      if (![...this.draining].some((id) => loaded.includes(id))) {
        const busiest = loaded
          .filter((id) => this.supervisorOf().runtimeOf(id)?.state === "running")
          .sort((a, b) => (this.slots.get(a)?.lastUsed ?? 0) - (this.slots.get(b)?.lastUsed ?? 0))[0];
        if (busiest) {
          this.draining.add(busiest);
          onDrain(busiest);
          this.log?.info(`Draining ${busiest} to make room for ${modelId}: new requests for it wait until the swap`);
        }
      }
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        // A load elsewhere may finish or fail instead; re-check now and then as a safety net.
        setTimeout(resolve, 1000);
      });
    }
  }

  /** Idle TTL: model settings override the global `idleTimeoutSeconds`; 0 = never. */
  private ttlSeconds(modelId: string): number {
    const own = this.registry.get(modelId)?.settings.idleTimeoutSeconds;
    return own ?? this.config().idleTimeoutSeconds;
  }

  /** Seconds a model stays up once idle: the last request's keep_alive, else its TTL (0 there = never). */
  private idleSeconds(modelId: string, slots: ModelSlots): number {
    if (slots.keepAliveSeconds !== undefined) return slots.keepAliveSeconds;
    return this.ttlSeconds(modelId) || Infinity;
  }

  /**
   * When the model will be stopped for idleness (Date.now() ms), or null for never. A model
   * with requests in flight counts from now, as Ollama's /api/ps shows it.
   */
  idleExpiresAt(modelId: string): number | null {
    const slots = this.slotsOf(modelId);
    if (slots.idleDeadline !== undefined) return slots.idleDeadline;
    const ttl = this.idleSeconds(modelId, slots);
    return Number.isFinite(ttl) ? Date.now() + ttl * 1000 : null;
  }

  private armIdleTimer(modelId: string, slots: ModelSlots): void {
    const ttl = this.idleSeconds(modelId, slots);
    if (slots.idleTimer) clearTimeout(slots.idleTimer);
    slots.idleTimer = undefined;
    slots.idleDeadline = undefined;
    if (!Number.isFinite(ttl)) return;
    const deadline = Date.now() + ttl * 1000;
    slots.idleDeadline = deadline;
    const fire = () => {
      // setTimeout cannot wait longer than 2^31-1 ms (it would fire at once): wait in steps.
      const left = deadline - Date.now();
      if (left > 0) {
        slots.idleTimer = setTimeout(fire, Math.min(left, MAX_TIMER_MS));
        slots.idleTimer.unref?.();
        return;
      }
      slots.idleTimer = undefined;
      slots.idleDeadline = undefined;
      const rt = this.supervisorOf().runtimeOf(modelId);
      if (slots.inFlight === 0 && slots.queue.length === 0 && rt?.state === "running") {
        this.log?.info(`Stopping ${modelId}: idle for ${ttl}s`);
        this.supervisorOf().stop(modelId).catch((err) => this.log?.warn(`Idle stop of ${modelId} failed: ${(err as Error).message}`));
      }
    };
    slots.idleTimer = setTimeout(fire, Math.min(ttl * 1000, MAX_TIMER_MS));
    slots.idleTimer.unref?.();
  }

  /** Marks a model used now for LRU purposes when it is started by hand (not via a request). */
  noteStarted(modelId: string): void {
    const slots = this.slotsOf(modelId);
    slots.lastUsed = performance.now();
    if (slots.inFlight === 0) this.armIdleTimer(modelId, slots);
  }

  /** Clears timers (shutdown). */
  close(): void {
    for (const s of this.slots.values()) if (s.idleTimer) clearTimeout(s.idleTimer);
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
