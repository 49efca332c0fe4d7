/**
 * Owns what the proxy knows about memory: each model's header facts (cached per file version),
 * its estimate for its effective settings, the last figure llama-server reported for it (SQLite,
 * one row per model and settings), and the device budgets. The lifecycle owner (pool.ts) asks it
 * what a model needs and what the devices can give; the API shows its views.
 */
import { statSync } from "node:fs";
import type { LlamaServerConfig } from "../config/schema";
import type { Db } from "../db/client";
import { modelMemory, type MeasuredDevice, type ModelRow } from "../db/schema";
import type { Logger } from "../logs/logger";
import type { GpuReader } from "../metrics/gpu";
import type { DeviceBudget, ModelNeed } from "../supervisor/planner";
import { deviceBudgets, readMemAvailable } from "./budget";
import { estimateMemory, type MemoryEstimate, type MemorySettings } from "./estimate";
import { readMemoryFacts, type ModelMemoryFacts } from "./facts";
import { memorySettingsOf, settingsKey } from "./settings";

/** Settings a caller may try out (GET /fit?ctxSize=&gpuLayers=). */
export interface SettingsOverride {
  ctxSize?: number;
  gpuLayers?: number;
}

export interface MeasuredMemory {
  totalBytes: number;
  devices: MeasuredDevice[];
  measuredAt: string;
}

/** What GET /api/models shows as `memory`. */
export interface ModelMemoryView {
  /** The estimate for the model's current settings (absent when its header cannot be read). */
  estimatedBytes?: number;
  /** What llama-server reported for these settings last time it ran them. */
  measuredBytes?: number;
  measuredAt?: string;
  contextSize?: number;
  breakdown?: { weightsBytes: number; kvBytes: number; computeBytes: number; outputBytes: number; gpuBytes: number; hostBytes: number; offloadedLayers: number };
  measuredDevices?: MeasuredDevice[];
  /** Why there is no estimate. */
  unavailable?: string;
}

type FactsEntry = { stamp: string; facts?: ModelMemoryFacts; error?: string };

export interface MemoryDeps {
  db: Db;
  config: () => LlamaServerConfig;
  /** The GPU reader (the collector's): null/undefined when GPUs are not read at all. */
  gpu?: () => GpuReader | undefined;
  log?: Logger;
  bus?: import("../events").EventBus;
  /** MemAvailable source (tests). */
  memAvailable?: () => number | undefined;
  /** Whether a model offloads to RPC workers' devices now (its `rpc` setting, a worker that reported devices). */
  remoteOffload?: (row: ModelRow) => boolean;
}

export class MemoryService {
  private facts = new Map<string, FactsEntry>();
  private refreshed = false;

  constructor(private readonly deps: MemoryDeps) {
    // What llama-server reported is kept per model and settings (the supervisor announces it).
    deps.bus?.on("model.memory", (m) => {
      if (!m.settingsKey) return;
      try {
        this.record(m.modelId, m.settingsKey, m.devices, new Date(m.at));
      } catch (err) {
        deps.log?.warn(`Could not store the memory report of ${m.modelId}: ${(err as Error).message}`);
      }
    });
  }

  /** Header facts of a model, read once per file version (path + size + mtime). */
  factsOf(row: Pick<ModelRow, "path" | "mmprojPath">): { facts?: ModelMemoryFacts; error?: string } {
    let stamp: string;
    try {
      const st = statSync(row.path);
      stamp = `${st.size}:${st.mtimeMs}:${row.mmprojPath ?? ""}`;
    } catch (err) {
      return { error: `cannot read ${row.path}: ${(err as Error).message}` };
    }
    const key = row.path;
    const cached = this.facts.get(key);
    if (cached && cached.stamp === stamp) return cached;
    let entry: FactsEntry;
    try {
      entry = { stamp, facts: readMemoryFacts(row.path, row.mmprojPath) };
    } catch (err) {
      entry = { stamp, error: `no memory estimate: ${(err as Error).message}` };
    }
    if (this.facts.size > 4096) this.facts.clear();
    this.facts.set(key, entry);
    return entry;
  }

  settingsOf(row: ModelRow, override: SettingsOverride = {}): MemorySettings {
    const s = memorySettingsOf(this.deps.config(), row.settings ?? {}, !!row.mmprojPath);
    return { ...s, ...(override.ctxSize !== undefined ? { ctxSize: override.ctxSize } : {}), ...(override.gpuLayers !== undefined ? { gpuLayers: override.gpuLayers } : {}) };
  }

  /** Whether layers of `row` leave the host: local GPUs, or the devices of its RPC workers. */
  offloads(row: ModelRow): boolean {
    return this.gpusPresent() || (this.deps.remoteOffload?.(row) ?? false);
  }

  /** Whether GPUs take layers (a GPU reading lists at least one). */
  gpusPresent(): boolean {
    return (this.deps.gpu?.()?.latest()?.gpus.length ?? 0) > 0;
  }

  /** Offloaded layers (offloads(): local GPUs, or a model's RPC workers' devices) count as GPU bytes. */
  estimate(row: ModelRow, override: SettingsOverride = {}): MemoryEstimate | undefined {
    const { facts } = this.factsOf(row);
    return facts ? estimateMemory(facts, this.settingsOf(row, override), this.offloads(row)) : undefined;
  }

  /** Every stored measurement, by model id + settings key (read once; record() keeps it current). */
  private measuredCache?: Map<string, MeasuredMemory>;

  measured(modelId: string, key: string): MeasuredMemory | undefined {
    if (!this.measuredCache) {
      this.measuredCache = new Map();
      for (const r of this.deps.db.select().from(modelMemory).all()) {
        this.measuredCache.set(`${r.modelId}\0${r.settingsKey}`, { totalBytes: r.totalBytes, devices: r.devices, measuredAt: r.measuredAt });
      }
    }
    return this.measuredCache.get(`${modelId}\0${key}`);
  }

  /** Keeps what llama-server reported for `row` with its settings at launch (`key`). */
  record(modelId: string, key: string, devices: MeasuredDevice[], at = new Date()): void {
    const totalBytes = devices.reduce((n, d) => n + d.modelBytes + d.contextBytes + d.computeBytes, 0);
    if (totalBytes <= 0) return;
    const row = { modelId, settingsKey: key, totalBytes, devices, measuredAt: at.toISOString() };
    this.deps.db.insert(modelMemory).values(row).onConflictDoUpdate({ target: [modelMemory.modelId, modelMemory.settingsKey], set: row }).run();
    this.measured(modelId, key); // make sure the cache is loaded before updating it
    this.measuredCache!.set(`${modelId}\0${key}`, { totalBytes, devices, measuredAt: row.measuredAt });
  }

  keyOf(row: ModelRow, override: SettingsOverride = {}): string {
    return settingsKey(this.settingsOf(row, override));
  }

  /**
   * What the planner should reserve for `row`: the measured figure for these settings when
   * there is one (per device kind, as llama-server reported it), else the estimate; nothing
   * (0 bytes) when the header cannot be read, so an unreadable file never blocks a start.
   */
  needOf(row: ModelRow, override: SettingsOverride = {}): ModelNeed {
    const e = this.estimate(row, override);
    const m = this.measured(row.id, this.keyOf(row, override));
    if (!e && !m) return { gpuBytes: 0, hostBytes: 0, gpuLayerBytes: [] };
    if (m) {
      const gpu = m.devices.filter((d) => d.kind === "gpu").reduce((n, d) => n + d.modelBytes + d.contextBytes + d.computeBytes, 0);
      const host = m.totalBytes - gpu;
      const layers = e?.gpuLayerBytes ?? [];
      const estLayers = layers.reduce((a, b) => a + b, 0);
      // Spread the measured GPU bytes over the layers in the estimate's proportions (a split needs per-layer sizes).
      const scale = estLayers > 0 && e && e.gpuBytes > 0 ? gpu / e.gpuBytes : 1;
      return { gpuBytes: gpu, hostBytes: host, gpuLayerBytes: layers.map((b) => b * scale) };
    }
    return { gpuBytes: e!.gpuBytes, hostBytes: e!.hostBytes, gpuLayerBytes: e!.gpuLayerBytes };
  }

  /**
   * `lazy`: only use facts already read; schedule reading the others in the background (a list
   * of 1,000 discovered models must not read 1,000 headers with their tensor infos at once).
   */
  view(row: ModelRow, lazy = false): ModelMemoryView {
    const cached = this.facts.get(row.path);
    if (lazy && !cached) {
      this.readLater(row);
      const m = this.measured(row.id, this.keyOf(row));
      return m ? { measuredBytes: m.totalBytes, measuredAt: m.measuredAt, measuredDevices: m.devices } : { unavailable: "estimate pending" };
    }
    const { facts, error } = this.factsOf(row);
    const m = this.measured(row.id, this.keyOf(row));
    const e = facts ? estimateMemory(facts, this.settingsOf(row), this.offloads(row)) : undefined;
    return {
      ...(e ? { estimatedBytes: e.totalBytes, contextSize: e.contextSize } : {}),
      ...(m ? { measuredBytes: m.totalBytes, measuredAt: m.measuredAt, measuredDevices: m.devices } : {}),
      ...(e
        ? { breakdown: { weightsBytes: e.weightsBytes, kvBytes: e.kvBytes, computeBytes: e.computeBytes, outputBytes: e.outputBytes, gpuBytes: e.gpuBytes, hostBytes: e.hostBytes, offloadedLayers: e.offloadedLayers } }
        : {}),
      ...(!e && error ? { unavailable: error } : {}),
    };
  }

  private backlog = new Map<string, Pick<ModelRow, "path" | "mmprojPath">>();
  private draining = false;

  /** Reads headers one at a time, yielding to the event loop between files. */
  private readLater(row: Pick<ModelRow, "path" | "mmprojPath">): void {
    if (this.backlog.size > 10_000) return;
    this.backlog.set(row.path, { path: row.path, mmprojPath: row.mmprojPath });
    if (this.draining) return;
    this.draining = true;
    const step = () => {
      const next = this.backlog.entries().next();
      if (next.done) {
        this.draining = false;
        return;
      }
      this.backlog.delete(next.value[0]);
      this.factsOf(next.value[1]);
      setTimeout(step, 0);
    };
    setTimeout(step, 0);
  }

  /**
   * Device budgets now, from the latest GPU reading; undefined until the first GPU read has
   * finished (the planner must not mistake "not read yet" for "no GPU").
   */
  devicesNow(ownPids: ReadonlySet<number>, ownHostBytes: number): DeviceBudget[] | undefined {
    if (!this.refreshed && this.deps.gpu?.() && !this.deps.gpu()!.latest() && this.nvidiaSmiInstalled()) return undefined;
    const cfg = this.deps.config();
    return deviceBudgets({
      gpu: this.deps.gpu?.()?.latest() ?? null,
      ownPids,
      memAvailableBytes: (this.deps.memAvailable ?? readMemAvailable)(),
      ownHostBytes,
      marginMiB: cfg.memoryMarginMiB,
      limitMiB: cfg.memoryLimitMiB,
    });
  }

  private smi?: boolean;
  /** Without nvidia-smi on PATH there is nothing to wait for: no GPUs (checked once). */
  private nvidiaSmiInstalled(): boolean {
    return (this.smi ??= Bun.which("nvidia-smi") !== null);
  }

  /** Reads the GPUs again (waits at most `waitMs`), so the next plan sees current free memory. */
  async refreshDevices(waitMs = 1500): Promise<void> {
    const gpu = this.deps.gpu?.();
    if (gpu) await gpu.refresh(waitMs);
    this.refreshed = true;
  }
}
