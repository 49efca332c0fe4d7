import { accessSync, constants, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ConfigStore } from "../config/store";
import type { ModelRow } from "../db/schema";
import type { EventBus } from "../events";
import { ApiError } from "../http/errors";
import type { LogBuffer } from "../logs/buffer";
import type { Logger } from "../logs/logger";
import type { ModelRegistry } from "../models/registry";
import { bindHost, buildServerArgs, connectHost, LaunchArgsError } from "./args";
import { childAuthHeaders, newChildKey } from "./child-keys";
import { checkServerBinary } from "./binary";
import { GpuProcessMemory, readRssMb } from "./memory";
import { cmdlineMatches, isSameProcessAlive, PidFile, readCmdline, readStartTime, type ChildRecord } from "./pidfile";
import { PortAllocator } from "./ports";
import {
  describeExit,
  EarlyExitError,
  LlamaServerProcess,
  levelOfLine,
  LoadAbortedError,
  LoadDeadlineError,
  type ChildExit,
} from "./process";
import { MemoryReportParser, VerbosityFilter } from "../memory/report";
import { ModelState } from "./state";
import type { LaunchPlan, ModelRuntimeInfo, SupervisorApi } from "./types";

export interface SupervisorDeps {
  registry: Pick<ModelRegistry, "get" | "list">;
  config: Pick<ConfigStore, "get">;
  logs: LogBuffer;
  log: Logger;
  bus?: EventBus;
  /** Where the pidfile lives (the proxy's data dir). */
  dataDir: string;
  /** Port allocation (tests inject one whose "is it free?" answer they control). */
  ports?: PortAllocator;
  /** Small named hooks into process launches (the KV cache adds --slot-save-path). */
  hooks?: LifecycleHooks;
}

/**
 * Work other modules do when a process is launched. A failing launchArgs hook never fails the
 * launch; requiredLaunchArgs is the one that may refuse it.
 * (Work before a stop hooks into the lifecycle owner instead: ModelPool.onBeforeStop.)
 */
export interface LifecycleHooks {
  /** Extra llama-server arguments for this launch, appended after the model's own. */
  launchArgs?(model: ModelRow, serverBinary: string): string[];
  /**
   * Arguments that depend on other hosts (src/rpc/workers.ts: --rpc, --tensor-split), found by a
   * fresh check before each launch. Unlike launchArgs, a throw refuses the launch, its message
   * being the reason the model shows (an RPC worker is down).
   */
  requiredLaunchArgs?(model: ModelRow): Promise<string[]>;
}

/** Timings that are not part of the user config; tests shrink them. */
export interface SupervisorTimings {
  /** /health poll interval while loading. */
  healthPollMs: number;
  /** A model up at least this long before a crash starts the restart count afresh. */
  stableAfterMs: number;
  /** Overrides config.loadTimeoutSeconds when set (ms). */
  loadTimeoutMs?: number;
  /** Overrides config.stopTimeoutSeconds when set (ms). */
  stopGraceMs?: number;
  /** Background /health check of running models (0 = off). */
  healthCheckIntervalMs: number;
  /** Failed background checks in a row after which a running server counts as hung (0 = never). */
  hungAfterChecks: number;
}

const DEFAULT_TIMINGS: SupervisorTimings = { healthPollMs: 25, stableAfterMs: 60_000, healthCheckIntervalMs: 10_000, hungAfterChecks: 3 };

/** Everything the supervisor tracks for one model. Mutated only by Supervisor methods. */
interface Slot {
  id: string;
  state: ModelState;
  proc?: LlamaServerProcess;
  port?: number;
  loadedAt?: string;
  loadingSince?: string;
  /** n_ctx reported by the running server's /props. */
  contextSize?: number;
  error?: ModelRuntimeInfo["error"];
  /** Crash restarts in a row (reset by a manual start, a stop, or a long enough run). */
  restarts: number;
  restartTimer?: ReturnType<typeof setTimeout>;
  /** True between a start and a stop: the user wants this model up (crash restarts honour it). */
  wanted: boolean;
  /** The load in progress, shared by every start() that arrives while it runs. */
  load?: Promise<ModelRuntimeInfo>;
  /** Aborts the load in progress (stop while loading). */
  loadAbort?: AbortController;
  /** Tail of the operation queue: start and stop run one after another, never interleaved. */
  queue: Promise<unknown>;
  /** Operations queued or running. */
  busy: number;
  /** Failed background health checks in a row (see checkRunning). */
  healthFailures?: number;
  /** Why we killed the running process ourselves (failRunning): shown as its error. */
  killReason?: string;
  /** The owner's launch plan (placement args and env) of the current start. */
  plan?: LaunchPlan;
}

/**
 * Owns every llama-server child: one per running model. State per model lives in a ModelState
 * (validated transitions, "model.status" events); start and stop of one model are serialized
 * through its queue; a crash of a running model triggers restarts with exponential backoff.
 */
export class Supervisor implements SupervisorApi {
  private slots = new Map<string, Slot>();
  private readonly ports: PortAllocator;
  private readonly pidFile: PidFile;
  private readonly timings: SupervisorTimings;
  private shuttingDown = false;
  private lastCheck: string | null = null;
  private healthTimer?: ReturnType<typeof setInterval>;
  private readonly gpu = new GpuProcessMemory();

  constructor(
    private readonly deps: SupervisorDeps,
    timings: Partial<SupervisorTimings> = {},
  ) {
    this.timings = { ...DEFAULT_TIMINGS, ...timings };
    this.ports = deps.ports ?? new PortAllocator();
    this.pidFile = new PidFile(join(deps.dataDir, "llama-servers.json"));
    if (this.timings.healthCheckIntervalMs > 0) {
      this.healthTimer = setInterval(() => void this.checkRunning(), this.timings.healthCheckIntervalMs);
      this.healthTimer.unref?.();
    }
  }

  // ---------------------------------------------------------------- public API

  async start(modelId: string, plan?: LaunchPlan): Promise<ModelRuntimeInfo> {
    const model = this.deps.registry.get(modelId);
    if (!model) throw new ApiError("NOT_FOUND", "Model not found", `No model with id "${modelId}"`);
    if (this.shuttingDown) throw new ApiError("SERVICE_UNAVAILABLE", "The proxy is shutting down");
    const slot = this.slotOf(modelId);
    // The placement applies to this load and to its crash restarts, until the next start.
    if (plan && !slot.load && !(slot.state.state === "running" && slot.proc)) slot.plan = plan;
    // A manual start is a fresh intent: forget earlier crash counts and any pending restart.
    slot.wanted = true;
    if (slot.restartTimer) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
    }
    if (slot.state.state === "running" && slot.proc) return this.info(slot);
    if (slot.load) return slot.load; // join the load in progress instead of spawning twice
    slot.restarts = 0;
    return this.startLoad(slot, false);
  }

  async stop(modelId: string): Promise<void> {
    const slot = this.slots.get(modelId);
    if (!slot) return;
    slot.wanted = false;
    if (slot.restartTimer) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
    }
    // Do not wait for a load to finish (it may take minutes): cancel it. The load itself then
    // stops its process and reports stopped; the queued stop below finds nothing left to do.
    slot.loadAbort?.abort();
    // A start that comes after this stop must not join the load being cancelled.
    slot.load = undefined;
    slot.loadAbort = undefined;
    await this.enqueue(slot, () => this.doStop(slot));
  }

  async stopAll(): Promise<void> {
    this.shuttingDown = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    await Promise.all([...this.slots.keys()].map((id) => this.stop(id)));
  }

  runtimeOf(modelId: string): ModelRuntimeInfo | undefined {
    const slot = this.slots.get(modelId);
    return slot ? this.info(slot) : undefined;
  }

  runtimes(): ModelRuntimeInfo[] {
    return [...this.slots.values()].map((s) => this.info(s));
  }

  /**
   * Kills a running model's llama-server because something it depends on is gone (an RPC worker):
   * the ordinary crash path follows (state error with `reason`, restart with backoff). False when
   * the model is not running.
   */
  failRunning(modelId: string, reason: string): boolean {
    const slot = this.slots.get(modelId);
    if (!slot?.proc || slot.state.state !== "running") return false;
    slot.killReason = reason;
    slot.proc.signal("SIGKILL");
    return true;
  }

  lastHealthCheck(): string | null {
    return this.lastCheck;
  }

  /**
   * Stops llama-server processes a previous proxy left running (it was killed with -9 and could
   * not stop them). Only processes whose pid, start time and command line all match what that
   * proxy recorded are touched. Returns how many were stopped.
   */
  cleanupOrphans(): Promise<number> {
    const run = this.stopOrphans();
    this.orphansCleared = run.catch(() => {});
    return run;
  }

  /**
   * Settles once cleanupOrphans has stopped what a predecessor left behind. Loads wait for it
   * (the orphans still hold ports and memory); the listen does not (stopping one may take the
   * whole stop grace period).
   */
  private orphansCleared: Promise<unknown> = Promise.resolve();

  private async stopOrphans(): Promise<number> {
    const previous = this.pidFile.readPrevious();
    if (!previous) return 0;
    if (previous.owner.pid !== process.pid && isSameProcessAlive(previous.owner)) {
      this.deps.log.warn(`Another proxy (pid ${previous.owner.pid}) is using ${this.pidFile.path}; leaving its processes alone`);
      return 0;
    }
    let stopped = 0;
    const grace = this.stopGraceMs();
    await Promise.all(
      previous.children.map(async (child) => {
        if (!isSameProcessAlive(child) || !cmdlineMatches(readCmdline(child.pid), child.command)) return;
        this.deps.log.warn(`Stopping orphaned llama-server of ${child.modelId} (pid ${child.pid}, port ${child.port}) left by a previous run`);
        await killOrphan(child, grace);
        stopped++;
      }),
    );
    this.pidFile.flush(); // replace the previous proxy's list with ours (empty so far)
    return stopped;
  }

  // ---------------------------------------------------------------- internals

  private slotOf(id: string): Slot {
    let slot = this.slots.get(id);
    if (!slot) {
      slot = { id, state: new ModelState(id, this.deps.bus), restarts: 0, wanted: false, queue: Promise.resolve(), busy: 0 };
      this.slots.set(id, slot);
    }
    return slot;
  }

  /** Runs `op` after every operation queued before it on this model. */
  private enqueue<T>(slot: Slot, op: () => Promise<T>): Promise<T> {
    slot.busy++;
    const run = slot.queue.then(op, op).finally(() => slot.busy--);
    slot.queue = run.catch(() => {});
    return run;
  }

  private startLoad(slot: Slot, automatic: boolean): Promise<ModelRuntimeInfo> {
    const abort = new AbortController();
    slot.loadAbort = abort;
    // When nothing else is queued the load begins right away: say so now, so a caller that does
    // not wait (?wait=false) already sees "loading" rather than the state before it.
    if (slot.busy === 0 && (slot.state.state === "stopped" || slot.state.state === "error")) {
      this.enterLoading(slot, automatic);
    }
    const load = this.enqueue(slot, () => this.doLoad(slot, abort.signal, automatic)).finally(() => {
      if (slot.load === load) slot.load = undefined;
      if (slot.loadAbort === abort) slot.loadAbort = undefined;
    });
    slot.load = load;
    return load;
  }

  private config() {
    return this.deps.config.get();
  }

  private stopGraceMs(): number {
    return this.timings.stopGraceMs ?? this.config().stopTimeoutSeconds * 1000;
  }

  private modelLog(slot: Slot, report: MemoryReportParser) {
    const source = `llama-server:${slot.id}`;
    // The owner runs llama-server at -lv 4 for its memory report; that verbosity adds ~210 lines
    // per load and ~20 per request. Every line is read for the report, but only what the default
    // verbosity would show reaches the ring buffer, so the console's log view stays readable.
    const filter = slot.plan?.verbose ? new VerbosityFilter() : undefined;
    return (line: string) => {
      report.line(line);
      if (filter && !filter.keep(line)) return;
      this.deps.logs.append(levelOfLine(line), source, line);
    };
  }

  /** Announces what llama-server reported it allocated (the memory service stores it). */
  private announceMemory(slot: Slot, report: MemoryReportParser): void {
    const devices = report.devices();
    if (!devices.length) return;
    this.deps.bus?.emit("model.memory", {
      modelId: slot.id,
      ...(slot.plan?.memoryKey ? { settingsKey: slot.plan.memoryKey } : {}),
      devices,
      totalBytes: report.totalBytes(),
      at: new Date().toISOString(),
    });
  }

  /** The load itself; runs inside the model's queue. */
  private async doLoad(slot: Slot, signal: AbortSignal, automatic: boolean): Promise<ModelRuntimeInfo> {
    await this.orphansCleared;
    if (slot.state.state === "running" && slot.proc) return this.info(slot);
    if (signal.aborted || !slot.wanted) {
      // startLoad may already have shown "loading"; a cancelled load ends stopped.
      if (slot.state.state === "loading") {
        slot.state.set("stopping", "stopping (load cancelled)");
        slot.state.set("stopped");
      }
      throw new ApiError("SERVICE_UNAVAILABLE", "Model start cancelled", "The model was stopped before it started loading");
    }
    const model = this.deps.registry.get(slot.id);
    if (!model) {
      if (slot.state.state === "loading") slot.state.set("error", "model no longer registered");
      throw new ApiError("NOT_FOUND", "Model not found", `No model with id "${slot.id}"`);
    }
    const cfg = this.config();
    if (slot.state.state !== "loading") this.enterLoading(slot, automatic);

    // Preflight: the cheap checks that give the clearest messages.
    const binary = checkServerBinary(cfg.serverPath);
    if (!binary.found) return this.failLoad(slot, binary.reason!, undefined, automatic);
    if (!isReadable(model.path)) return this.failLoad(slot, `Model file not found or not readable: ${model.path}`, undefined, automatic);
    let hookArgs: string[] = [];
    try {
      hookArgs = (await this.deps.hooks?.requiredLaunchArgs?.(model)) ?? [];
    } catch (err) {
      return this.failLoad(slot, (err as Error).message, undefined, automatic);
    }

    const host = bindHost(cfg.host);
    const deadlineMs = this.timings.loadTimeoutMs ?? cfg.loadTimeoutSeconds * 1000;
    const t0 = performance.now();
    // Between our port check and the child's bind another program may take the port; the
    // child then exits with "couldn't bind". That is our race, not the user's problem: retry on
    // the next free port a few times before reporting it.
    const bindFailed = new Set<number>();
    for (let attempt = 1; ; attempt++) {
      let port: number;
      let args: string[];
      try {
        port = this.ports.allocate(host, cfg.port, bindFailed);
        args = [...buildServerArgs(cfg, toLaunchSpec(model), host, port, [...(slot.plan?.args ?? []), ...hookArgs]), ...this.hookLaunchArgs(model, binary.path!)];
      } catch (err) {
        return this.failLoad(slot, (err as Error).message, undefined, automatic && !(err instanceof LaunchArgsError));
      }
      const command = [binary.path!, ...args];
      const report = new MemoryReportParser();
      let proc: LlamaServerProcess;
      try {
        proc = new LlamaServerProcess({
          command,
          baseUrl: `http://${connectHost(host)}:${port}`,
          onLine: this.modelLog(slot, report),
          ...(slot.plan && Object.keys(slot.plan.env).length ? { env: { ...process.env, ...slot.plan.env } } : {}),
          apiKey: newChildKey(),
        });
      } catch (err) {
        this.ports.release(port);
        return this.failLoad(slot, `Cannot execute ${binary.path}: ${(err as Error).message}`, undefined, automatic);
      }
      slot.proc = proc;
      slot.port = port;
      this.pidFile.add({ modelId: slot.id, pid: proc.pid, startTime: readStartTime(proc.pid), port, command, startedAt: new Date().toISOString() });
      this.deps.log.info(`Starting llama-server for ${slot.id} on port ${port} (pid ${proc.pid})`, { command });
      void proc.exited.then((exit) => {
        // At exit llama-server prints its breakdown table (at -lv 4): the most exact figure.
        if (report.hasTable()) this.announceMemory(slot, report);
        this.onExit(slot, proc, exit);
      });

      try {
        await proc.waitReady(Math.max(1, deadlineMs - (performance.now() - t0)), signal, this.timings.healthPollMs);
      } catch (err) {
        if (err instanceof LoadAbortedError) {
          slot.state.set("stopping", "stopping (load cancelled)");
          await proc.stop(this.stopGraceMs());
          this.forget(slot, proc);
          slot.state.set("stopped");
          this.deps.log.info(`Load of ${slot.id} cancelled by a stop`);
          throw new ApiError("SERVICE_UNAVAILABLE", "Model start cancelled", "The model was stopped while loading");
        }
        if (err instanceof EarlyExitError) {
          this.forget(slot, proc);
          if (attempt < 3 && proc.logTail().some((l) => /couldn't bind|address already in use/i.test(l))) {
            bindFailed.add(port);
            this.deps.log.warn(`Port ${port} was taken before llama-server could bind it; retrying ${slot.id} on another port`);
            continue;
          }
          return this.failLoad(slot, `llama-server exited while loading the model (${describeExit(err.exit)})`, { proc, exit: err.exit }, automatic);
        }
        if (err instanceof LoadDeadlineError) {
          // Keep the tail from before our own SIGTERM; the kill's noise says nothing about why.
          const tail = proc.logTail();
          const exit = await proc.stop(this.stopGraceMs());
          this.forget(slot, proc);
          return this.failLoad(slot, `llama-server did not become healthy within ${Math.round(deadlineMs / 100) / 10} s; it was stopped`, { proc, exit, tail }, automatic);
        }
        throw err;
      }
      slot.loadedAt = new Date().toISOString();
      this.lastCheck = proc.lastHealthCheck ?? this.lastCheck;
      slot.contextSize = await readContextSize(proc.baseUrl);
      if (proc.processGone) {
        // Died right after answering /health: onExit ignored it (we were still loading).
        const exit = await proc.exited;
        this.forget(slot, proc);
        return this.failLoad(slot, `llama-server exited right after becoming ready (${describeExit(exit)})`, { proc, exit }, automatic);
      }
      slot.state.set("running", undefined);
      this.announceMemory(slot, report);
      this.deps.log.info(`Model ${slot.id} is ready on port ${port} after ${Math.round(performance.now() - t0)} ms`);
      return this.info(slot);
    }
  }

  private enterLoading(slot: Slot, automatic: boolean): void {
    slot.error = undefined;
    slot.loadedAt = undefined;
    slot.loadingSince = new Date().toISOString();
    slot.state.set("loading", automatic ? `restarting (attempt ${slot.restarts}/${this.config().maxRestarts})` : "starting");
  }

  /** Records a failed load: state error with the reason and the last log lines, then throws. */
  private failLoad(
    slot: Slot,
    message: string,
    ctx: { proc: LlamaServerProcess; exit: ChildExit; tail?: string[] } | undefined,
    retry: boolean,
  ): never {
    const logTail = ctx ? (ctx.tail ?? ctx.proc.logTail()) : [];
    slot.error = {
      message,
      ...(ctx ? { exitCode: ctx.exit.code, signal: ctx.exit.signal } : {}),
      logTail,
    };
    slot.state.set("error", message);
    this.deps.log.error(`Model ${slot.id} failed to start: ${message}`, logTail.length ? { logTail } : undefined);
    if (retry) this.scheduleRestart(slot);
    // details always says something: the log tail, or (no process got that far) the reason again.
    throw new ApiError("SERVICE_UNAVAILABLE", `Model ${slot.id} failed to start: ${message}`, logTail.length ? logTail.join("\n") : message);
  }

  /** Drops a process that has exited (or been stopped) from the slot, port pool and pidfile. */
  private forget(slot: Slot, proc: LlamaServerProcess): void {
    if (slot.proc === proc) {
      slot.proc = undefined;
      this.ports.release(slot.port);
      slot.port = undefined;
    }
    this.pidFile.remove(proc.pid);
  }

  /** Every child exit ends here. Only an exit of a *running* model is unexpected (a crash). */
  private onExit(slot: Slot, proc: LlamaServerProcess, exit: ChildExit): void {
    this.pidFile.remove(proc.pid);
    if (slot.proc !== proc) return; // already forgotten by stop/load handling
    if (slot.state.state !== "running") return; // loading/stopping code awaits this exit itself
    const upMs = slot.loadedAt ? Date.now() - Date.parse(slot.loadedAt) : 0;
    this.forget(slot, proc);
    if (upMs >= this.timings.stableAfterMs) slot.restarts = 0;
    const logTail = proc.logTail();
    const message = slot.killReason ?? `llama-server exited unexpectedly (${describeExit(exit)})`;
    slot.killReason = undefined;
    slot.error = { message, exitCode: exit.code, signal: exit.signal, logTail };
    slot.loadedAt = undefined;
    slot.state.set("error", message);
    this.deps.log.error(`Model ${slot.id}: ${message}`, { logTail });
    this.scheduleRestart(slot);
  }

  /** Backoff: restartDelayMs doubling per attempt up to restartMaxDelayMs, at most maxRestarts. */
  private scheduleRestart(slot: Slot): void {
    const cfg = this.config();
    if (!slot.wanted || this.shuttingDown) return;
    if (slot.restarts >= cfg.maxRestarts) {
      const detail = cfg.maxRestarts === 0 ? slot.error?.message : `gave up after ${slot.restarts} restart${slot.restarts === 1 ? "" : "s"}`;
      slot.state.setDetail(detail);
      if (cfg.maxRestarts > 0) this.deps.log.error(`Model ${slot.id}: ${detail}; start it again by hand`);
      return;
    }
    const delay = Math.min(cfg.restartDelayMs * 2 ** slot.restarts, cfg.restartMaxDelayMs);
    slot.restarts++;
    const detail = `restarting in ${formatDelay(delay)} (attempt ${slot.restarts}/${cfg.maxRestarts})`;
    slot.state.setDetail(detail);
    this.deps.log.warn(`Model ${slot.id}: ${detail}`);
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (!slot.wanted || this.shuttingDown || slot.load) return;
      this.startLoad(slot, true).catch(() => {
        // failLoad logged it and scheduled the next attempt
      });
    }, delay);
  }

  /** The stop itself; runs inside the model's queue. */
  private async doStop(slot: Slot): Promise<void> {
    const st = slot.state.state;
    slot.restarts = 0;
    if (st === "error") {
      slot.state.set("stopped");
      return;
    }
    if (st !== "running" || !slot.proc) return; // stopped already (or the cancelled load cleaned up)
    const proc = slot.proc;
    slot.state.set("stopping", "stopping");
    const t0 = performance.now();
    const result = await proc.stop(this.stopGraceMs());
    this.forget(slot, proc);
    slot.loadedAt = undefined;
    slot.state.set("stopped");
    const how = result.killed ? "killed with SIGKILL after the grace period" : describeExit(result);
    this.deps.log.info(`Model ${slot.id} stopped in ${Math.round(performance.now() - t0)} ms (${how})`);
  }

  private hookLaunchArgs(model: ModelRow, serverBinary: string): string[] {
    try {
      return this.deps.hooks?.launchArgs?.(model, serverBinary) ?? [];
    } catch (err) {
      this.deps.log.warn(`Launch hook for ${model.id} failed (starting without it): ${(err as Error).message}`);
      return [];
    }
  }

  /**
   * Background health check of running models: keeps /api/health's time fresh and catches a
   * llama-server that is alive but no longer answers (deadlocked, SIGSTOPped, swapping to death).
   * After `hungAfterChecks` failed checks in a row it is killed with SIGKILL, and the ordinary
   * crash path (error, backoff restart) takes over: one mechanism for every way a server dies.
   * Checks of different models run concurrently so one hung server does not delay the others.
   */
  private async checkRunning(): Promise<void> {
    if (this.checking) return; // the previous round is still waiting on a slow server
    this.checking = true;
    try {
      const timeoutMs = Math.min(2000, Math.max(50, this.timings.healthCheckIntervalMs));
      await Promise.all(
        [...this.slots.values()].map(async (slot) => {
          const proc = slot.proc;
          if (slot.state.state !== "running" || !proc) return;
          const healthy = await proc.checkHealth(timeoutMs);
          this.lastCheck = proc.lastHealthCheck ?? this.lastCheck;
          if (slot.proc !== proc || slot.state.state !== "running") return; // stopped meanwhile
          if (healthy) {
            slot.healthFailures = 0;
            return;
          }
          slot.healthFailures = (slot.healthFailures ?? 0) + 1;
          const limit = this.timings.hungAfterChecks;
          this.deps.log.warn(`Model ${slot.id}: /health did not answer 200 (${slot.healthFailures}/${limit})`);
          if (limit > 0 && slot.healthFailures >= limit) {
            slot.healthFailures = 0;
            this.deps.log.error(`Model ${slot.id}: llama-server stopped answering; killing pid ${proc.pid} so it restarts`);
            proc.signal("SIGKILL");
          }
        }),
      );
    } finally {
      this.checking = false;
    }
  }
  private checking = false;

  /** Last memory reading per child pid (see info()). */
  private readonly memoryCache = new Map<number, { at: number; value: number | undefined }>();

  private info(slot: Slot): ModelRuntimeInfo {
    const state = slot.state.state;
    const proc = slot.proc;
    let memoryUsage: number | undefined;
    if (proc && (state === "running" || state === "loading")) {
      // runtimeOf() is on the proxy's hot path (several calls per request): read /proc at most
      // once a second per process instead of on every call.
      const now = performance.now();
      const cached = this.memoryCache.get(proc.pid);
      if (cached && now - cached.at < 1000) memoryUsage = cached.value;
      else {
        const rss = readRssMb(proc.pid);
        const gpu = this.gpu.of(proc.pid);
        memoryUsage = rss === undefined && gpu === undefined ? undefined : Math.round(((rss ?? 0) + (gpu ?? 0)) * 10) / 10;
        if (this.memoryCache.size > 256) this.memoryCache.clear(); // pids of long-gone children
        this.memoryCache.set(proc.pid, { at: now, value: memoryUsage });
      }
    } else if (proc) this.memoryCache.delete(proc.pid);
    return {
      modelId: slot.id,
      state,
      status: slot.state.status,
      ...(slot.state.detail ? { statusDetail: slot.state.detail } : {}),
      ...(slot.port !== undefined ? { port: slot.port } : {}),
      ...(proc ? { pid: proc.pid, baseUrl: proc.baseUrl } : {}),
      ...(slot.loadedAt && state === "running" ? { loadedAt: slot.loadedAt } : {}),
      ...(state === "loading" && slot.loadingSince ? { loadingSince: slot.loadingSince } : {}),
      ...(memoryUsage !== undefined ? { memoryUsage } : {}),
      ...(slot.contextSize !== undefined && state === "running" ? { contextSize: slot.contextSize } : {}),
      ...(slot.error && state === "error" ? { error: slot.error } : {}),
      ...(slot.plan && state !== "stopped" ? { placement: slot.plan.placement } : {}),
      restarts: slot.restarts,
      ...(slot.restartTimer ? { restartPending: true } : {}),
    };
  }
}

/** n_ctx the server actually runs with (GET /props), or undefined when it does not say. */
async function readContextSize(baseUrl: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${baseUrl}/props`, { headers: childAuthHeaders(baseUrl), signal: AbortSignal.timeout(1000) });
    if (!res.ok) return undefined;
    const props = (await res.json()) as { default_generation_settings?: { n_ctx?: unknown } };
    const n = props.default_generation_settings?.n_ctx;
    return typeof n === "number" && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function toLaunchSpec(model: ModelRow) {
  return { id: model.id, path: model.path, mmprojPath: model.mmprojPath, settings: model.settings ?? {} };
}

function isReadable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function formatDelay(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/** SIGTERM the orphan's group, wait, SIGKILL; we cannot await a non-child, so poll /proc. */
async function killOrphan(child: ChildRecord, graceMs: number): Promise<void> {
  const send = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid, sig);
    } catch {
      try {
        process.kill(child.pid, sig);
      } catch {
        // gone
      }
    }
  };
  const gone = () => !isSameProcessAlive(child) || isZombie(child.pid);
  send("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (!gone() && Date.now() < deadline) await Bun.sleep(20);
  if (!gone()) {
    send("SIGKILL");
    const hard = Date.now() + 5000;
    while (!gone() && Date.now() < hard) await Bun.sleep(20);
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}
