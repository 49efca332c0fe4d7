import type { ConfigStore } from "../config/store";
import type { ModelSettings } from "../db/schema";
import type { EventBus } from "../events";
import type { Logger } from "../logs/logger";
import type { RpcWorkerConfig } from "../peers/schema";
import { rpcLaunchArgs, type WorkerFacts } from "./launch";
import type { RpcDevice } from "./rpc-server";

export interface RpcWorkerTimings {
  /** Background check of every worker (GET /api/worker). */
  checkIntervalMs: number;
  checkTimeoutMs: number;
}

export const DEFAULT_RPC_WORKER_TIMINGS: RpcWorkerTimings = { checkIntervalMs: 5000, checkTimeoutMs: 2000 };

/** What GET /api/rpc-workers and the console show of one worker. */
export interface RpcWorkerSnapshot {
  name: string;
  url: string;
  state: "unknown" | "up" | "down";
  /** The worker's rpc-server: starting, running, restarting, stopped. */
  rpcState?: string;
  endpoint?: string;
  generation?: number;
  restarts?: number;
  devices: RpcDevice[];
  latencyMs?: number;
  lastCheckAt?: string;
  lastError?: { message: string; at: string };
  /** Models running over this worker now. */
  models: string[];
}

interface Worker {
  config: RpcWorkerConfig;
  facts: WorkerFacts;
  snapshot: Omit<RpcWorkerSnapshot, "models" | "name" | "url">;
  checking?: Promise<void>;
}

/** What RpcWorkers needs from the model lifecycle (kept small: #12 owns the lifecycle). */
export interface RpcLifecycle {
  /** The model's current state ("running", "error", ...), or undefined. */
  stateOf(modelId: string): string | undefined;
  /** Stops a running model's llama-server so that it shows `reason` as its error. */
  failRunning(modelId: string, reason: string): boolean;
  /** Starts the model again (through the pool, as a manual start would). */
  restart(modelId: string): Promise<unknown>;
}

/**
 * The main instance's view of its RPC workers (`rpcWorkers` in the config): checks each one in
 * the background, answers the start-time question "may this model start, and with which --rpc
 * list?", and watches the workers a running model uses. llama-server only notices a dead
 * rpc-server on its next computation (and then aborts), and a restarted rpc-server has lost the
 * tensors it held, so when a worker goes down or its rpc-server's generation changes, the models
 * using it are failed at once with that reason and started again when every worker they need is
 * back.
 */
export class RpcWorkers {
  private workers = new Map<string, Worker>();
  /** Model id -> the workers (and their rpc-server generations) it was started over. */
  private uses = new Map<string, Array<{ name: string; generation: number }>>();
  /** Models failed because of a worker, to restart once their workers are back. */
  private waiting = new Map<string, string[]>();
  private timer?: ReturnType<typeof setInterval>;
  private unsubscribe?: () => void;
  readonly timings: RpcWorkerTimings;

  constructor(
    private readonly deps: { config: Pick<ConfigStore, "get">; log: Logger; bus?: EventBus; lifecycle: () => RpcLifecycle },
    timings: Partial<RpcWorkerTimings> = {},
  ) {
    this.timings = { ...DEFAULT_RPC_WORKER_TIMINGS, ...timings };
    this.reconcile(deps.config.get().rpcWorkers ?? []);
    this.unsubscribe = deps.bus?.on("config.changed", (cfg) => this.reconcile(cfg.rpcWorkers ?? []));
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.checkAll().then(() => this.watch()), this.timings.checkIntervalMs);
    this.timer.unref?.();
    void this.checkAll();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
  }

  private reconcile(configs: RpcWorkerConfig[]): void {
    const next = new Map<string, Worker>();
    for (const config of configs) {
      const old = this.workers.get(config.name);
      if (old && old.config.url === config.url && old.config.apiKey === config.apiKey) {
        next.set(config.name, old);
        continue;
      }
      next.set(config.name, { config, facts: { name: config.name, reachable: false, error: "not checked yet", urlHost: new URL(config.url).hostname }, snapshot: { state: "unknown", devices: [] } });
    }
    this.workers = next;
  }

  async checkAll(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => this.check(w)));
  }

  /**
   * Checks the workers of an `rpc` setting now (only those never checked yet with `onlyUnknown`),
   * so that a plan for a model over them sees their devices (the memory planner, via the pool).
   */
  async refresh(rpc: readonly string[] | "all", onlyUnknown = false): Promise<void> {
    const names = rpc === "all" ? [...this.workers.keys()] : rpc;
    const ws = names.map((n) => this.workers.get(n)).filter((w): w is Worker => !!w && (!onlyUnknown || w.snapshot.state === "unknown"));
    await Promise.all(ws.map((w) => this.check(w)));
  }

  private check(w: Worker): Promise<void> {
    return (w.checking ??= this.doCheck(w).finally(() => (w.checking = undefined)));
  }

  private async doCheck(w: Worker): Promise<void> {
    const at = new Date().toISOString();
    const t0 = performance.now();
    const urlHost = new URL(w.config.url).hostname;
    try {
      const res = await fetch(`${w.config.url}/api/worker`, {
        headers: { authorization: `Bearer ${w.config.apiKey}` },
        signal: AbortSignal.timeout(this.timings.checkTimeoutMs),
        redirect: "manual",
      });
      if (!res.ok) throw new Error(`GET /api/worker answered ${res.status}`);
      const body = (await res.json()) as { data?: Record<string, unknown> };
      const d = body.data ?? {};
      const rpcState = typeof d.state === "string" ? d.state.slice(0, 40) : undefined;
      const endpoint = typeof d.endpoint === "string" ? d.endpoint.slice(0, 300) : undefined;
      const generation = typeof d.generation === "number" ? d.generation : undefined;
      const devices = Array.isArray(d.devices) ? (d.devices as RpcDevice[]).filter((x) => typeof x?.name === "string").slice(0, 64) : [];
      w.facts = { name: w.config.name, reachable: true, rpcState, endpoint, generation, urlHost };
      w.snapshot = {
        state: "up", rpcState, endpoint, generation, devices,
        ...(typeof d.restarts === "number" ? { restarts: d.restarts } : {}),
        latencyMs: Math.round((performance.now() - t0) * 10) / 10,
        lastCheckAt: at,
        ...(w.snapshot.lastError ? { lastError: w.snapshot.lastError } : {}),
      };
    } catch (err) {
      const e = err as Error;
      const message = e.name === "TimeoutError" ? `no answer within ${this.timings.checkTimeoutMs} ms` : e.message;
      if (w.snapshot.state !== "down") this.deps.log.warn(`RPC worker ${w.config.name} is unreachable: ${message}`);
      w.facts = { name: w.config.name, reachable: false, error: message, urlHost };
      w.snapshot = { ...w.snapshot, state: "down", lastCheckAt: at, lastError: { message, at } };
    }
  }

  /**
   * The start-time hook: the extra llama-server arguments for a model (--rpc host:port,... and
   * --tensor-split), after a fresh check of the workers it needs. Throws with the reason when one
   * is down, so the start fails saying which worker and why.
   */
  async launchArgs(model: { id: string; settings: ModelSettings }): Promise<string[]> {
    const rpc = model.settings.rpc;
    if (!rpc) return [];
    const names = rpc === "all" ? [...this.workers.keys()] : rpc;
    await Promise.all(names.map((n) => this.workers.get(n)).filter((w): w is Worker => !!w).map((w) => this.check(w)));
    const facts = new Map([...this.workers].map(([n, w]) => [n, w.facts]));
    const decision = rpcLaunchArgs(model.settings, [...this.workers.keys()], facts);
    if (!decision.ok) throw new Error(decision.reason);
    this.uses.set(model.id, decision.workers);
    this.waiting.delete(model.id);
    return decision.args;
  }

  /**
   * After each round of checks: fail running models whose workers went down or restarted, and
   * start again the ones failed that way once their workers are all back.
   */
  async watch(): Promise<void> {
    const life = this.deps.lifecycle();
    for (const [modelId, used] of this.uses) {
      const state = life.stateOf(modelId);
      if (state !== "running" && state !== "loading") continue;
      if (state === "loading") continue; // the start itself checked them just now
      for (const u of used) {
        const w = this.workers.get(u.name);
        const f = w?.facts;
        const lost = !f || !f.reachable ? `RPC worker ${u.name} is down: ${f?.error ?? "removed from the config"}` :
          f.rpcState !== "running" ? `RPC worker ${u.name}'s rpc-server is ${f.rpcState}` :
          f.generation !== u.generation ? `RPC worker ${u.name}'s rpc-server restarted (the model's tensors there are gone)` : undefined;
        if (!lost) continue;
        this.deps.log.error(`Model ${modelId}: ${lost}; stopping it until the worker is back`);
        if (life.failRunning(modelId, lost)) this.waiting.set(modelId, used.map((x) => x.name));
        this.uses.delete(modelId);
        break;
      }
    }
    for (const [modelId, names] of this.waiting) {
      const state = life.stateOf(modelId);
      // Stopped by someone meanwhile: not ours to start. (A new start of it goes through
      // launchArgs, which forgets the entry; still "running" = our kill has not landed yet.)
      if (state === "stopped" || state === undefined) {
        this.waiting.delete(modelId);
        continue;
      }
      if (state !== "error") continue;
      const back = names.every((n) => {
        const f = this.workers.get(n)?.facts;
        return f?.reachable && f.rpcState === "running";
      });
      if (!back) continue;
      this.waiting.delete(modelId);
      this.deps.log.info(`Model ${modelId}: its RPC workers are back; starting it again`);
      life.restart(modelId).catch((err) => this.deps.log.error(`Model ${modelId}: restart after the RPC workers came back failed: ${(err as Error).message}`));
    }
  }

  snapshot(): RpcWorkerSnapshot[] {
    return [...this.workers.values()].map((w) => ({
      name: w.config.name,
      url: w.config.url,
      ...w.snapshot,
      models: [...this.uses].filter(([id, used]) => used.some((u) => u.name === w.config.name) && this.deps.lifecycle().stateOf(id) === "running").map(([id]) => id),
    }));
  }
}
