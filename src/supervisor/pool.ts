import type { LlamaServerConfig } from "../config/schema";
import type { ModelRow } from "../db/schema";
import type { EventBus } from "../events";
import { ApiError } from "../http/errors";
import type { Logger } from "../logs/logger";
import { maxContextWithin, type MemoryEstimate } from "../memory/estimate";
import { remoteBudgets, rpcTargetOf, type RemoteWorkerReport } from "../memory/budget";
import type { MemoryService, SettingsOverride } from "../memory/service";
import type { ModelRegistry } from "../models/registry";
import { freeBytes, placementLabel, placementLaunch, planStart, unavailableNote, type Decision, type DeviceBudget, type ModelNeed, type Occupant, type OccupantState, type Placement, type RpcTarget } from "./planner";
import type { LaunchPlan, ModelRuntimeInfo, SupervisorApi } from "./types";

/** A granted request slot on a running model. Call release() exactly once when the request ends. */
export interface Lease {
  modelId: string;
  baseUrl: string;
  release(): void;
}

export interface AcquireOptions {
  /**
   * How long the model stays loaded after this request (Ollama's keep_alive), seconds:
   * -1 = keep it loaded, 0 = unload once this request is done, N = stop after N idle seconds.
   * The latest request's value wins; absent = the model's idleTimeoutSeconds.
   */
  keepAliveSeconds?: number;
}

/** Why the owner stops a model (passed to beforeStop hooks). */
export type StopReason = "user" | "evict" | "idle" | "unload" | "restart" | "shutdown";

export interface BeforeStopContext {
  reason: StopReason;
  /** The hook's deadline: the stop goes ahead after this many ms whatever the hook does. */
  deadlineMs: number;
  /** Aborted at the deadline. */
  signal: AbortSignal;
  /** The model's llama-server, still running (e.g. to save its slots). */
  baseUrl: string;
}
export type BeforeStopHook = (modelId: string, ctx: BeforeStopContext) => Promise<void> | void;

/** GET /api/models/:id/fit: whether, where and at what cost the model would start now. */
export interface FitAnswer {
  fits: boolean;
  /** Local devices, then the remote devices of RPC workers that are up (kind "rpc", with their worker). */
  devices: { id: string; kind: "gpu" | "host" | "rpc"; worker?: string; capacityBytes: number; freeBytes: number; needBytes: number }[];
  /** A model with the `rpc` setting: each of its workers, whether its devices count and why not. */
  rpcWorkers?: { name: string; counted: boolean; reason?: string }[];
  /** Models that would be stopped (or drained, then stopped) to make room. */
  evict: string[];
  estimatedBytes: number | null;
  /** Free bytes now on the devices the model would use. */
  freeBytes: number;
  /** The largest context that fits once every evictable model is gone (0: none; null: unknown). */
  maxContextSize: number | null;
  reason: string;
  placement?: Placement;
  /** Where it would run, for people: "worker-a + local GPU 0", "local GPU 1", "local CPU". */
  where?: string;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** A start accepted by the owner and not finished. */
interface PendingStart {
  promise: Promise<ModelRuntimeInfo>;
  /** A stop arrived before the start was handed to the supervisor: it must not start at all. */
  cancelled: boolean;
  /** Handed to the supervisor: from now on it occupies memory (and a place) like a loading model. */
  admitted: boolean;
}

/**
 * Everything the owner keeps per model: intent and usage. Process state (loading, running,
 * stopping, crashed) is the supervisor's alone; this never duplicates it.
 */
interface Entry {
  inFlight: number;
  /** Requests waiting for the model to load or for a free slot, in arrival order. */
  queue: Waiter[];
  /** Monotonic time of the last lease (LRU order). */
  lastUsed: number;
  idleTimer?: ReturnType<typeof setTimeout>;
  pending?: PendingStart;
  /** Chosen to make room while busy: new requests wait until the swap. */
  draining: boolean;
  /** Where it was started and what it was planned to need there. */
  placement?: Placement;
  keepAliveSeconds?: number;
  /** Date.now() ms at which the armed idle timer stops the model (for Ollama's /api/ps). */
  idleDeadline?: number;
  /** restart(model, {whenIdle}) callers waiting for the model's next idle moment. */
  restartWaiters?: { resolve: (rt: ModelRuntimeInfo) => void; reject: (err: Error) => void }[];
}

/** The longest delay setTimeout honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface PoolDeps {
  /** Read on every use: tests (and a hot reload) may swap the supervisor after start-up. */
  supervisor: () => SupervisorApi;
  registry: ModelRegistry;
  config: () => LlamaServerConfig;
  memory?: MemoryService;
  log?: Logger;
  bus?: EventBus;
  /**
   * What the RPC workers report now (RpcWorkers' snapshot): their devices count for the models
   * started with --rpc over them. Absent: no workers.
   */
  rpcWorkers?: () => readonly RemoteWorkerReport[];
  /** Checks the workers of an `rpc` setting now (RpcWorkers.refresh). */
  refreshRpcWorkers?: (rpc: readonly string[] | "all", onlyUnknown: boolean) => Promise<void>;
}

export interface PoolOptions {
  /** Seconds a 429 tells clients to wait (Retry-After). */
  retryAfterSeconds?: number;
  /** Longest the beforeStop hooks may hold up a stop (ms). */
  beforeStopDeadlineMs?: number;
}

const ZERO_NEED: ModelNeed = { gpuBytes: 0, hostBytes: 0, gpuLayerBytes: [] };
const UNLIMITED_HOST: DeviceBudget[] = [{ id: "host", kind: "host", capacityBytes: Number.MAX_SAFE_INTEGER }];

/** A placement with its bytes replaced by a memory report (GPU bytes spread as planned). */
export function measuredPlacement(p: Placement, devices: readonly import("../db/schema").MeasuredDevice[]): Placement {
  const sum = (kind: "gpu" | "host") => devices.filter((d) => d.kind === kind).reduce((n, d) => n + d.modelBytes + d.contextBytes + d.computeBytes, 0);
  const gpu = sum("gpu");
  const host = sum("host");
  const plannedGpu = p.devices.filter((d) => d.id !== "host").reduce((n, d) => n + d.bytes, 0);
  return {
    ...p,
    devices: p.devices.map((d) =>
      d.id === "host" ? { id: d.id, bytes: host } : { id: d.id, bytes: plannedGpu > 0 ? (d.bytes / plannedGpu) * gpu : gpu / Math.max(1, p.gpus.length) },
    ),
  };
}

/** Each worker of a model's `rpc` setting, and whether its devices counted in the plan. */
function rpcWorkersOf(setting: readonly string[] | "all" | undefined, rpc: RpcTarget, workers: readonly RemoteWorkerReport[]): NonNullable<FitAnswer["rpcWorkers"]> {
  const names = setting === "all" ? workers.map((w) => w.name) : [...(setting ?? [])];
  return names.map((name) => {
    const missing = rpc.unavailable.find((u) => u.worker === name);
    return missing ? { name, counted: false, reason: missing.reason } : { name, counted: true };
  });
}

const cancelled = (id: string) => new ApiError("SERVICE_UNAVAILABLE", `Start of ${id} cancelled by a stop`);

/**
 * The one owner of a model's lifecycle. The API, console, catalog and proxy all go through it:
 * `acquire` (a request), `start`, `stop`, `restart`, `stopAll`. It asks the pure planner
 * (planner.ts) what to do and applies the decision through the supervisor, which owns the
 * processes. See src/supervisor/README.md.
 *
 * Concurrency model: everything runs on the one JS thread, so counters need no locks; but
 * "make room, then start" spans awaits, so admissions are serialized through `admission` to stop
 * two concurrent loads from both seeing the same free memory and over-filling a device.
 */
export class ModelPool {
  private entries = new Map<string, Entry>();
  /** Tail of the admission chain (see class comment). */
  private admission: Promise<void> = Promise.resolve();
  /** Admissions queued on the chain and not through it yet (0 = the fast path may start at once). */
  private admissionsPending = 0;
  /** Woken whenever something that frees room happens (a release to idle, a status change). */
  private changeWaiters: Array<() => void> = [];
  private hooks = new Set<BeforeStopHook>();
  private readonly registry: ModelRegistry;
  private readonly config: () => LlamaServerConfig;
  private readonly log?: Logger;
  readonly memory?: MemoryService;

  constructor(
    private readonly deps: PoolDeps,
    private readonly options: PoolOptions = {},
  ) {
    this.registry = deps.registry;
    this.config = deps.config;
    this.log = deps.log;
    this.memory = deps.memory;
    deps.bus?.on("model.status", (e) => {
      // A model that failed cannot serve its queue: fail the waiters (each would retry the load).
      if (e.status === "error") this.failQueue(e.modelId, new ApiError("SERVICE_UNAVAILABLE", `Model ${e.modelId} failed`, e.detail));
      // Only an end frees room. Not "running": a model that just loaded still has to serve the
      // requests that waited for it; waking a waiting admission then would drain it before it
      // served anything (two cold models would evict each other forever).
      if (e.state === "stopped" || e.state === "error") this.wakeChange();
    });
    // What llama-server says it allocated replaces the planned bytes of the running model, so the
    // next plan counts what it really holds.
    deps.bus?.on("model.memory", (m) => {
      const entry = this.entries.get(m.modelId);
      // In place: the supervisor's launch plan holds the same object (the model's status shows it).
      if (entry?.placement) entry.placement.devices = measuredPlacement(entry.placement, m.devices).devices;
    });
  }

  private get sup(): SupervisorApi {
    return this.deps.supervisor();
  }

  private entry(modelId: string): Entry {
    let e = this.entries.get(modelId);
    if (!e) this.entries.set(modelId, (e = { inFlight: 0, queue: [], lastUsed: 0, draining: false }));
    return e;
  }

  // ------------------------------------------------------------------ hooks for other modules

  /**
   * Runs `hook` before every stop this owner makes of a running model (user stop, eviction, idle
   * TTL, restart, shutdown), at most `beforeStopDeadlineMs` (default 10 s); the stop then goes
   * ahead whatever the hook did. Returns the function that removes the hook.
   */
  onBeforeStop(hook: BeforeStopHook): () => void {
    this.hooks.add(hook);
    return () => this.hooks.delete(hook);
  }

  // ------------------------------------------------------------------ reading

  /** A start of this model was accepted and has not finished (it may still be making room). */
  isStarting(modelId: string): boolean {
    return this.entries.get(modelId)?.pending !== undefined;
  }

  inFlight(modelId: string): number {
    return this.entries.get(modelId)?.inFlight ?? 0;
  }

  queued(modelId: string): number {
    return this.entries.get(modelId)?.queue.length ?? 0;
  }

  /** Where the model was placed when it was started (while it occupies memory). */
  placementOf(modelId: string): Placement | undefined {
    const rt = this.sup.runtimeOf(modelId);
    if (!rt || rt.state === "stopped") return undefined;
    return this.entries.get(modelId)?.placement;
  }

  // ------------------------------------------------------------------ requests

  /**
   * Waits until `modelId` runs and has a free slot, then returns a lease. Throws ApiError:
   * RATE_LIMITED when the model's queue is full, SERVICE_UNAVAILABLE when the load fails or the
   * model cannot fit, and rejects with the signal's reason when the client goes away.
   */
  async acquire(modelId: string, signal?: AbortSignal, onWaiting?: () => void, opts: AcquireOptions = {}): Promise<Lease> {
    const cfg = this.config();
    const e = this.entry(modelId);
    const maxInFlight = cfg.maxConcurrentRequests;
    for (;;) {
      signal?.throwIfAborted();
      const rt = this.sup.runtimeOf(modelId);
      const running = rt?.state === "running" && rt.baseUrl;
      // Fast path: running, a free slot, and nobody queued ahead of us (FIFO fairness).
      if (running && !e.draining && e.inFlight < maxInFlight && e.queue.length === 0) {
        return this.grant(modelId, e, rt.baseUrl!, opts);
      }
      if (e.queue.length >= cfg.maxQueuedRequests) {
        throw new ApiError(
          "RATE_LIMITED",
          `Too many requests for model ${modelId}`,
          `${e.inFlight} in flight and ${e.queue.length} queued (limits ${maxInFlight} and ${cfg.maxQueuedRequests})`,
          { "Retry-After": String(this.options.retryAfterSeconds ?? 1) },
        );
      }
      onWaiting?.();
      // Not running: (join the) load, waiting in the queue so the bound applies to loads too.
      await this.waitInQueue(e, signal, running ? undefined : () => this.start(modelId));
      // Re-check: the model may have been stopped again while we were woken.
      const after = this.sup.runtimeOf(modelId);
      if (after?.state === "running" && after.baseUrl && !e.draining && e.inFlight < maxInFlight) {
        return this.grant(modelId, e, after.baseUrl, opts);
      }
    }
  }

  private grant(modelId: string, e: Entry, baseUrl: string, opts: AcquireOptions): Lease {
    e.inFlight++;
    e.lastUsed = performance.now();
    if (opts.keepAliveSeconds !== undefined) e.keepAliveSeconds = opts.keepAliveSeconds;
    if (e.idleTimer) clearTimeout(e.idleTimer);
    e.idleTimer = undefined;
    let released = false;
    return {
      modelId,
      baseUrl,
      release: () => {
        if (released) return;
        released = true;
        e.inFlight--;
        e.queue[0]?.resolve();
        if (e.inFlight === 0) this.onIdle(modelId, e);
      },
    };
  }

  /**
   * Queues the caller until woken by a release (or by `work` finishing, for loads). The waiter
   * leaves the queue when woken, when `work` fails, or when its client aborts.
   */
  private waitInQueue(e: Entry, signal?: AbortSignal, work?: () => Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal };
      const leave = () => {
        const i = e.queue.indexOf(waiter);
        if (i >= 0) e.queue.splice(i, 1);
        if (waiter.onAbort) signal?.removeEventListener("abort", waiter.onAbort);
      };
      waiter.resolve = () => (leave(), resolve());
      waiter.reject = (err) => (leave(), reject(err));
      if (signal) {
        waiter.onAbort = () => waiter.reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      e.queue.push(waiter);
      work?.().then(
        // The load is done: every waiter may proceed (acquire re-checks the slot limit); wake
        // them all at once so none waits for a release.
        () => {
          for (const w of [...e.queue]) w.resolve();
        },
        (err) => waiter.reject(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  private wakeAll(modelId: string): void {
    const e = this.entries.get(modelId);
    if (e) for (const w of [...e.queue]) w.resolve();
  }

  private failQueue(modelId: string, err: Error): void {
    const e = this.entries.get(modelId);
    if (e) for (const w of [...e.queue]) w.reject(err);
  }

  private wakeChange(): void {
    for (const w of this.changeWaiters.splice(0)) w();
  }

  /** Resolves on the next change that may free room, or after 1 s as a safety net. */
  private waitForChange(): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      this.changeWaiters.push(() => (clearTimeout(t), resolve()));
    });
  }

  // ------------------------------------------------------------------ starting

  /** Same as start() (the name the proxy and older callers use). */
  ensureStarted(modelId: string): Promise<ModelRuntimeInfo> {
    return this.start(modelId);
  }

  /**
   * Starts `modelId` where the planner puts it, first stopping (or draining) what it says must
   * make room; refuses with the reason when it cannot fit. Concurrent callers share one start.
   */
  start(modelId: string): Promise<ModelRuntimeInfo> {
    const e = this.entry(modelId);
    if (e.pending) return e.pending.promise;
    const pending: PendingStart = { promise: undefined as never, cancelled: false, admitted: false };
    e.pending = pending;
    // Fast path: nobody is ahead in admission and the plan says "start" right now. Starting
    // synchronously means the model shows "loading" the moment the caller returns
    // (POST /start?wait=false relies on it).
    let decision: Decision | undefined;
    try {
      // A model over RPC workers never checked yet plans in the slow path, after their check
      // (else its plan would count none of their devices).
      decision = this.admissionsPending === 0 && !this.rpcUnknown(modelId) ? this.planNow(modelId) : undefined;
    } catch (err) {
      decision = undefined;
      this.log?.warn(`Planning ${modelId} failed: ${(err as Error).message}`);
    }
    const started = decision?.action === "start" ? this.launch(modelId, pending, decision.placement) : this.admit(modelId, pending);
    pending.promise = started
      .then((rt) => {
        this.noteStarted(modelId);
        return rt;
      })
      .finally(() => {
        if (e.pending === pending) e.pending = undefined;
      });
    return pending.promise;
  }

  /** The slow path: queue for admission, make room as the planner says, then launch. */
  private admit(modelId: string, pending: PendingStart): Promise<ModelRuntimeInfo> {
    this.admissionsPending++;
    // The launch's promise travels in a box: an async function would otherwise wait for the
    // load itself inside the admission chain, serializing every load behind the previous one.
    let box: { load: Promise<ModelRuntimeInfo> } | undefined;
    const turn = this.admission.then(async () => {
      try {
        box = await this.makeRoomAndLaunch(modelId, pending);
      } finally {
        this.admissionsPending--;
      }
    });
    this.admission = turn.catch(() => {});
    return turn.then(() => box!.load);
  }

  private async makeRoomAndLaunch(modelId: string, pending: PendingStart): Promise<{ load: Promise<ModelRuntimeInfo> }> {
    const drained = new Set<string>();
    try {
      await this.memory?.refreshDevices();
      await this.refreshRpc(modelId, false);
      for (;;) {
        if (pending.cancelled) throw cancelled(modelId); // a stop won: evict nobody for it
        const d = this.planNow(modelId);
        if (!d) {
          await this.memory?.refreshDevices();
          continue;
        }
        switch (d.action) {
          case "start":
            return { load: this.launch(modelId, pending, d.placement) };
          case "stop":
            for (const victim of d.models) {
              if (pending.cancelled) throw cancelled(modelId);
              this.log?.info(`Stopping ${victim} to make room for ${modelId}: ${d.reason}`);
              await this.stopModel(victim, "evict");
              // Requests that queued for it while it drained now (re)load it, behind this admission.
              const v = this.entries.get(victim);
              if (v?.draining) {
                v.draining = false;
                drained.delete(victim);
                this.wakeAll(victim);
              }
            }
            continue;
          case "drain":
            for (const victim of d.models) {
              this.entry(victim).draining = true;
              drained.add(victim);
              this.log?.info(`Draining ${victim} to make room for ${modelId}: new requests for it wait until the swap`);
            }
            continue;
          case "wait":
            await this.waitForChange();
            continue;
          case "refuse":
            throw new ApiError(
              "SERVICE_UNAVAILABLE",
              `Model ${modelId} does not fit: ${d.reason}`,
              `need ${d.needBytes} bytes, at most ${d.freeBytes} bytes free`,
            );
        }
      }
    } finally {
      // Whatever happened, a model we drained but did not stop takes requests again.
      for (const id of drained) {
        const v = this.entries.get(id);
        if (v?.draining) {
          v.draining = false;
          this.wakeAll(id);
        }
      }
    }
  }

  private launch(modelId: string, pending: PendingStart, placement: Placement): Promise<ModelRuntimeInfo> {
    if (pending.cancelled) return Promise.reject(cancelled(modelId));
    pending.admitted = true;
    this.entry(modelId).placement = placement;
    const row = this.registry.get(modelId);
    const gpus = this.memory?.gpusPresent() ?? false;
    const launch = placementLaunch(placement, gpus);
    // -lv 4 makes llama-server print its buffer sizes and, at exit, its memory breakdown (both
    // are trace-level in common/log.h); a model whose extraArgs choose a verbosity keeps its own.
    const ownVerbosity = (row?.settings?.extraArgs ?? []).some((a) => /^(-lv|--verbosity|--log-verbosity|-v|--verbose|--log-verbose)(=|$)/.test(a));
    const plan: LaunchPlan = {
      args: ownVerbosity ? launch.args : ["-lv", "4", ...launch.args],
      env: launch.env,
      placement,
      ...(ownVerbosity ? {} : { verbose: true }),
      ...(row && this.memory ? { memoryKey: this.memory.keyOf(row) } : {}),
    };
    const load = this.sup.start(modelId, plan);
    // Let the supervisor register the load before the next admission counts occupants.
    load.catch(() => {});
    return load;
  }

  /** Whether `modelId` has an `rpc` setting naming a worker that was never checked. */
  private rpcUnknown(modelId: string): boolean {
    const rpc = this.registry.get(modelId)?.settings?.rpc;
    if (!rpc || !this.deps.rpcWorkers) return false;
    const workers = this.deps.rpcWorkers();
    const names = rpc === "all" ? workers.map((w) => w.name) : rpc;
    return names.some((n) => workers.find((w) => w.name === n)?.state === "unknown");
  }

  /** A fresh look at the model's RPC workers before planning it (failures show in their state). */
  private async refreshRpc(modelId: string, onlyUnknown: boolean): Promise<void> {
    const rpc = this.registry.get(modelId)?.settings?.rpc;
    if (!rpc || !this.deps.refreshRpcWorkers) return;
    try {
      await this.deps.refreshRpcWorkers(rpc, onlyUnknown);
    } catch (err) {
      this.log?.warn(`Checking the RPC workers of ${modelId} failed: ${(err as Error).message}`);
    }
  }

  /** The planner's input for starting `modelId` now; undefined while the GPUs are not read yet. */
  private planInput(modelId: string, override: SettingsOverride = {}) {
    const row = this.registry.get(modelId);
    const occupants = this.occupants(modelId);
    const ownPids = new Set(this.sup.runtimes().flatMap((r) => (r.pid ? [r.pid] : [])));
    const ownHost = occupants.filter((o) => o.state === "running").reduce((n, o) => n + (o.placement.devices.find((d) => d.id === "host")?.bytes ?? 0), 0);
    const local = this.memory ? this.memory.devicesNow(ownPids, ownHost) : UNLIMITED_HOST;
    if (!local) return undefined;
    // Every known remote device is listed (what running models hold there is counted), but only a
    // model started with --rpc over its worker can use it (planner: target.rpc).
    const workers = this.deps.rpcWorkers?.() ?? [];
    const cfg = this.config();
    const devices = workers.length ? [...local, ...remoteBudgets(workers, cfg.memoryMarginMiB, cfg.memoryLimitMiB)] : local;
    const rpc: RpcTarget | undefined = rpcTargetOf(row?.settings?.rpc, row?.settings?.tensorSplit, workers);
    // Layers go to the remote devices even on a host without GPUs (MemoryService.offloads).
    const offload = row && this.memory ? this.memory.offloads(row) : false;
    const need = row && this.memory ? this.memory.needOf(row, override) : ZERO_NEED;
    return { row, devices, occupants, need, rpc, offload };
  }

  private planNow(modelId: string): Decision | undefined {
    const p = this.planInput(modelId);
    if (!p) return undefined;
    return planStart({
      devices: p.devices,
      occupants: p.occupants,
      target: { id: modelId, need: p.need, allowPartialOffload: p.row?.settings?.allowPartialOffload ?? false, ...(p.rpc ? { rpc: p.rpc } : {}) },
      maxLoadedModels: this.config().maxLoadedModels,
    });
  }

  /** Models that hold memory now (or will: admitted starts), except `except`. */
  private occupants(except: string): Occupant[] {
    const out: Occupant[] = [];
    const seen = new Set<string>();
    for (const rt of this.sup.runtimes()) {
      if (rt.modelId === except) continue;
      // A stopping process still holds its memory; a crashed one with a restart scheduled will
      // come back on its own: both count, or the pool would overshoot.
      const state: OccupantState | undefined =
        rt.state === "running" ? "running" : rt.state === "loading" ? "loading" : rt.state === "stopping" ? "stopping" : rt.state === "error" && rt.restartPending ? "restarting" : undefined;
      if (!state) continue;
      seen.add(rt.modelId);
      out.push(this.occupant(rt.modelId, state));
    }
    for (const [id, e] of this.entries) {
      if (id !== except && !seen.has(id) && e.pending?.admitted) out.push(this.occupant(id, "loading"));
    }
    return out;
  }

  private occupant(id: string, state: OccupantState): Occupant {
    const e = this.entries.get(id);
    const row = this.registry.get(id);
    return {
      id,
      state,
      inFlight: e?.inFlight ?? 0,
      queued: e?.queue.length ?? 0,
      lastUsed: e?.lastUsed ?? 0,
      pinned: row?.settings?.pinned ?? false,
      draining: e?.draining ?? false,
      placement: e?.placement ?? this.assumedPlacement(row),
    };
  }

  /** A model started behind the owner's back (tests call the supervisor directly): its need on the host/first GPU. */
  private assumedPlacement(row: ModelRow | undefined): Placement {
    const need = row && this.memory ? this.memory.needOf(row) : ZERO_NEED;
    const devices = [{ id: "host", bytes: need.hostBytes }];
    if (need.gpuBytes > 0) devices.push({ id: "gpu0", bytes: need.gpuBytes });
    return { devices, gpus: need.gpuBytes > 0 ? [0] : [] };
  }

  // ------------------------------------------------------------------ stopping

  /**
   * Stops a model (idempotent): a start still waiting for room is cancelled instead of starting
   * after the stop, a load in progress is aborted, a running model gets its beforeStop hooks and
   * then SIGTERM. Requests in flight end with the process.
   */
  async stop(modelId: string, reason: StopReason = "user"): Promise<void> {
    this.cancelPendingStart(modelId);
    const e = this.entries.get(modelId);
    if (e?.restartWaiters) {
      const ws = e.restartWaiters;
      e.restartWaiters = undefined;
      for (const w of ws) w.reject(new ApiError("SERVICE_UNAVAILABLE", `Model ${modelId} was stopped before its restart`));
    }
    await this.stopModel(modelId, reason);
  }

  /**
   * A start of this model still waiting for room (not yet handed to the supervisor) will not
   * run. Returns true if there was one. (stop() calls this; kept public for callers that stop
   * the process another way.)
   */
  cancelPendingStart(modelId: string): boolean {
    const p = this.entries.get(modelId)?.pending;
    if (!p || p.admitted) return false;
    p.cancelled = true;
    this.wakeChange();
    return true;
  }

  /** The one place a model is stopped: hooks first (when it runs), then the supervisor. */
  private async stopModel(modelId: string, reason: StopReason): Promise<void> {
    const rt = this.sup.runtimeOf(modelId);
    if (rt?.state === "running" && rt.baseUrl && this.hooks.size) await this.runBeforeStop(modelId, rt.baseUrl, reason);
    const e = this.entries.get(modelId);
    if (e?.idleTimer) clearTimeout(e.idleTimer);
    if (e) e.idleTimer = undefined;
    await this.sup.stop(modelId);
    if (e) e.keepAliveSeconds = undefined;
    this.wakeChange();
  }

  private async runBeforeStop(modelId: string, baseUrl: string, reason: StopReason): Promise<void> {
    const deadlineMs = this.options.beforeStopDeadlineMs ?? 10_000;
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        ac.abort(new Error(`beforeStop deadline of ${deadlineMs} ms passed`));
        resolve();
      }, deadlineMs);
    });
    const ctx: BeforeStopContext = { reason, deadlineMs, signal: ac.signal, baseUrl };
    const all = Promise.allSettled([...this.hooks].map((h) => Promise.resolve().then(() => h(modelId, ctx)))).then((results) => {
      for (const r of results) if (r.status === "rejected") this.log?.warn(`beforeStop hook for ${modelId} failed: ${(r.reason as Error)?.message ?? r.reason}`);
    });
    await Promise.race([all, deadline]);
    clearTimeout(timer);
    if (ac.signal.aborted) this.log?.warn(`beforeStop hooks for ${modelId} did not finish within ${deadlineMs} ms; stopping anyway`);
  }

  /**
   * Restarts a model (e.g. after its settings changed). Default: drain (requests in flight
   * finish, new ones wait), stop, start. `whenIdle`: no draining; the restart happens at the
   * model's next moment with nothing in flight or queued. A model that is not running is started.
   */
  async restart(modelId: string, opts: { whenIdle?: boolean } = {}): Promise<ModelRuntimeInfo> {
    const rt = this.sup.runtimeOf(modelId);
    if (!rt || rt.state === "stopped" || rt.state === "error") return this.start(modelId);
    const e = this.entry(modelId);
    if (opts.whenIdle && (e.inFlight > 0 || e.queue.length > 0)) {
      return new Promise((resolve, reject) => (e.restartWaiters ??= []).push({ resolve, reject }));
    }
    return this.restartNow(modelId);
  }

  private async restartNow(modelId: string): Promise<ModelRuntimeInfo> {
    const e = this.entry(modelId);
    e.draining = true;
    try {
      while (e.inFlight > 0) await this.waitForChange();
      await this.stopModel(modelId, "restart");
    } finally {
      e.draining = false;
    }
    const started = this.start(modelId);
    this.wakeAll(modelId); // requests queued during the drain join the new start
    return started;
  }

  /** Stops every model (shutdown), each after its beforeStop hooks. */
  async stopAll(): Promise<void> {
    this.close();
    await Promise.all(this.sup.runtimes().filter((r) => r.state === "running").map((r) => this.stopModel(r.modelId, "shutdown").catch(() => {})));
    await this.sup.stopAll();
  }

  /** Starts every model flagged autoStart, through the planner; failures are logged. */
  autoStart(): void {
    for (const row of this.registry.list()) {
      if (!row.settings?.autoStart) continue;
      this.log?.info(`Auto-starting model ${row.id}`);
      this.start(row.id).catch((err) => this.log?.error(`Auto-start of ${row.id} failed: ${(err as Error).message}`));
    }
  }

  // ------------------------------------------------------------------ idle

  /** Idle TTL: model settings override the global `idleTimeoutSeconds`; 0 = never. */
  private ttlSeconds(modelId: string): number {
    return this.registry.get(modelId)?.settings.idleTimeoutSeconds ?? this.config().idleTimeoutSeconds;
  }

  private onIdle(modelId: string, e: Entry): void {
    this.wakeChange();
    if (e.restartWaiters && e.queue.length === 0) {
      const ws = e.restartWaiters;
      e.restartWaiters = undefined;
      this.restartNow(modelId).then(
        (rt) => ws.forEach((w) => w.resolve(rt)),
        (err) => ws.forEach((w) => w.reject(err)),
      );
      return;
    }
    if (e.keepAliveSeconds === 0 && e.queue.length === 0) {
      this.log?.info(`Stopping ${modelId}: its last request asked to unload it (keep_alive 0)`);
      this.stopModel(modelId, "unload").catch((err) => this.log?.warn(`Unload of ${modelId} failed: ${(err as Error).message}`));
      return;
    }
    this.armIdleTimer(modelId, e);
  }

  /** Idle seconds before the model is stopped: the latest keep_alive, else its TTL; <= 0 = never. */
  private idleSeconds(modelId: string, e: Entry): number {
    return e.keepAliveSeconds !== undefined ? e.keepAliveSeconds : this.ttlSeconds(modelId);
  }

  /**
   * When the model will be stopped for idleness (Date.now() ms), or null for never. A model
   * that is busy counts from now, as Ollama's /api/ps shows it.
   */
  idleExpiresAt(modelId: string): number | null {
    const e = this.entries.get(modelId);
    if (e?.idleTimer && e.idleDeadline !== undefined) return e.idleDeadline;
    const ttl = e ? this.idleSeconds(modelId, e) : this.ttlSeconds(modelId);
    return ttl > 0 ? Date.now() + ttl * 1000 : null;
  }

  private armIdleTimer(modelId: string, e: Entry): void {
    const ttl = this.idleSeconds(modelId, e);
    if (ttl <= 0) return; // 0 = never (setting); -1 = keep loaded (keep_alive)
    if (e.idleTimer) clearTimeout(e.idleTimer);
    const deadline = Date.now() + ttl * 1000;
    e.idleDeadline = deadline;
    // setTimeout fires at once for delays over 2^31-1 ms (keep_alive "1000h" is 3.6e9 ms): wait in steps.
    const step = () => Math.min(Math.max(deadline - Date.now(), 0), MAX_TIMER_MS);
    const fire = () => {
      if (deadline - Date.now() > 0) {
        e.idleTimer = setTimeout(fire, step());
        e.idleTimer.unref?.();
        return;
      }
      e.idleTimer = undefined;
      const rt = this.sup.runtimeOf(modelId);
      if (e.inFlight === 0 && e.queue.length === 0 && rt?.state === "running") {
        this.log?.info(`Stopping ${modelId}: idle for ${ttl}s`);
        this.stopModel(modelId, "idle").catch((err) => this.log?.warn(`Idle stop of ${modelId} failed: ${(err as Error).message}`));
      }
    };
    e.idleTimer = setTimeout(fire, step());
    e.idleTimer.unref?.();
  }

  /** Marks a model used now for LRU purposes when it is started by hand (not via a request). */
  noteStarted(modelId: string): void {
    const e = this.entry(modelId);
    e.lastUsed = performance.now();
    if (e.inFlight === 0) this.armIdleTimer(modelId, e);
  }

  // ------------------------------------------------------------------ fit

  /**
   * Would `modelId` start now with these settings, where, and what would be stopped for it?
   * Plans as a start would (the same planner), treating every stop and drain as done.
   */
  async fit(modelId: string, override: SettingsOverride = {}): Promise<FitAnswer> {
    await this.memory?.refreshDevices();
    await this.refreshRpc(modelId, true);
    const p = this.planInput(modelId, override);
    const row = p?.row;
    const rpc = p?.rpc;
    const estimate: MemoryEstimate | undefined = row && this.memory ? this.memory.estimate(row, override) : undefined;
    const devices = p?.devices ?? UNLIMITED_HOST;
    let occupants = p?.occupants ?? [];
    const need = p?.need ?? ZERO_NEED;
    const freeNow = freeBytes(devices, occupants);
    const evict: string[] = [];
    let decision: Decision;
    let waitedFor = "";
    for (let i = 0; ; i++) {
      decision = planStart({ devices, occupants, target: { id: modelId, need, allowPartialOffload: row?.settings?.allowPartialOffload ?? false, ...(rpc ? { rpc } : {}) }, maxLoadedModels: this.config().maxLoadedModels });
      if (i > occupants.length + 2) break;
      if (decision.action === "stop" || decision.action === "drain") {
        evict.push(...decision.models);
        occupants = occupants.filter((o) => !(decision as { models: string[] }).models.includes(o.id));
      } else if (decision.action === "wait") {
        // Loading/stopping models: a start would wait for them; the answer assumes they end as they are.
        waitedFor = decision.reason;
        occupants = occupants.map((o) => (o.state === "stopping" ? { ...o, placement: { devices: [], gpus: [] } } : o.draining ? o : { ...o, inFlight: 0, queued: 0 }));
      } else break;
    }
    const used = decision.action === "start" ? decision.placement.devices : [];
    // The devices the model can offload to: local GPUs, and its workers' devices when it has `rpc`.
    const offloadTo = (d: DeviceBudget) => d.kind === "gpu" || (d.kind === "rpc" && (rpc?.devices.includes(d.id) ?? false));
    const relevant = decision.action === "start" ? new Set(used.map((d) => d.id)) : new Set(devices.filter((d) => (need.gpuBytes > 0 ? offloadTo(d) : d.kind === "host")).map((d) => d.id));
    // The largest context: against the room left once every model that could be stopped is gone.
    let maxContextSize: number | null = null;
    const facts = row && this.memory ? this.memory.factsOf(row).facts : undefined;
    if (facts && row && this.memory) {
      const settings = this.memory.settingsOf(row, override);
      const gpus = (p?.offload ?? false) && need.gpuBytes > 0;
      const unmovable = (p?.occupants ?? []).filter((o) => o.pinned || o.state === "loading");
      const free = freeBytes(devices, unmovable);
      const budget = gpus
        ? devices.filter(offloadTo).reduce((n, d) => n + Math.max(0, free.get(d.id) ?? 0), 0)
        : Math.max(0, free.get("host") ?? 0);
      maxContextSize = maxContextWithin(facts, settings, gpus, budget);
    }
    const fits = decision.action === "start";
    // A model over RPC workers says where it lands ("fits over worker-a + local GPU 0") and
    // which of its workers add nothing; the refusal already carries the latter.
    const where = fits && rpc ? ` over ${placementLabel((decision as { placement: Placement }).placement, devices)}` : "";
    const note = fits ? unavailableNote(rpc) : "";
    const reason = fits
      ? (evict.length
          ? `fits${where} after stopping ${evict.join(", ")}`
          : waitedFor
            ? `fits${where} once the current loads and stops finish (${waitedFor})`
            : where
              ? `fits${where}`
              : "fits now") + note
      : decision.action === "refuse"
        ? decision.reason
        : "undecided";
    return {
      fits,
      devices: devices.map((d) => ({
        id: d.id,
        kind: d.kind,
        ...(d.worker ? { worker: d.worker } : {}),
        capacityBytes: d.capacityBytes,
        freeBytes: Math.max(0, freeNow.get(d.id) ?? 0),
        needBytes: used.find((u) => u.id === d.id)?.bytes ?? 0,
      })),
      evict,
      estimatedBytes: estimate?.totalBytes ?? null,
      freeBytes: [...relevant].reduce((n, id) => n + Math.max(0, freeNow.get(id) ?? 0), 0),
      maxContextSize,
      reason,
      ...(decision.action === "start" ? { placement: decision.placement, where: placementLabel(decision.placement, devices) } : {}),
      ...(rpc ? { rpcWorkers: rpcWorkersOf(row?.settings?.rpc, rpc, this.deps.rpcWorkers?.() ?? []) } : {}),
    };
  }

  /** Clears timers (shutdown). */
  close(): void {
    for (const e of this.entries.values()) if (e.idleTimer) clearTimeout(e.idleTimer);
    this.wakeChange();
  }
}
