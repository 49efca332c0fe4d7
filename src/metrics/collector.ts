import { statSync } from "node:fs";
import type { ConfigStore } from "../config/store";
import type { EventBus } from "../events";
import type { Logger } from "../logs/logger";
import type { ModelRegistry } from "../models/registry";
import type { RequestStats } from "../proxy/stats";
import type { SupervisorApi } from "../supervisor/types";
import { GpuReader } from "./gpu";
import { MetricsHistory } from "./history";
import { LlamaMetricsReader } from "./llama-metrics";
import { LatencyHistogram } from "./prometheus";
import { CpuSampler, readDisk, readMemory } from "./system";
import type { DiskMetrics, SystemMetrics } from "./types";

export interface CollectorDeps {
  bus: EventBus;
  log: Logger;
  config: ConfigStore;
  registry: Pick<ModelRegistry, "count">;
  supervisor: SupervisorApi;
  requests: RequestStats;
  cpu: CpuSampler;
  dataDir: string;
  startedAt: Date;
  history: MetricsHistory;
  gpu?: GpuReader;
  llama?: LlamaMetricsReader;
  /** Longest a sample waits for nvidia-smi before using the last good reading (ms). */
  gpuWaitMs?: number;
}

/** Device id of a path's filesystem, or undefined when it does not exist. */
function deviceOf(path: string): number | undefined {
  try {
    return statSync(path).dev;
  } catch {
    return undefined;
  }
}

/**
 * The metrics collector: samples the machine, the GPUs, the models and the request counters on
 * an interval, off the request path, and is the single owner of the latest sample. Every sample
 * is emitted as "metrics.sample" and rolled up into the minute history; every completed request
 * ("request.completed") is counted into the history and the latency histogram.
 *
 * Scheduling is a setTimeout chain, not setInterval: a sample that runs long (slow llama-server
 * /metrics) delays the next one instead of overlapping it, and an interval change from
 * "config.changed" takes effect at the next tick.
 */
export class MetricsCollector {
  readonly history: MetricsHistory;
  readonly gpu: GpuReader;
  readonly llama: LlamaMetricsReader;
  readonly latency = new LatencyHistogram();
  private last: SystemMetrics | null = null;
  /** JSON of `last`, made on the first ask after each sample (GET /api/monitoring serves it as is). */
  private lastJson: string | null = null;
  private inProgress: Promise<SystemMetrics> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private intervalMs: number;
  private unsubscribe: Array<() => void> = [];

  constructor(private readonly d: CollectorDeps) {
    this.history = d.history;
    this.gpu = d.gpu ?? new GpuReader({ log: d.log });
    this.llama = d.llama ?? new LlamaMetricsReader();
    this.intervalMs = d.config.get().metricsIntervalSeconds * 1000;
    // Prime the CPU deltas now, so the first sample measures the moments since startup rather
    // than the average since boot.
    d.cpu.sample();
    // Requests are counted even when the loop is not running (tests, before start()).
    this.unsubscribe.push(
      d.bus.on("request.completed", (r) => {
        this.history.addRequest(r);
        this.latency.observe(r.modelId, r.durationMs / 1000);
      }),
      d.bus.on("config.changed", (cfg) => {
        const next = cfg.metricsIntervalSeconds * 1000;
        if (next === this.intervalMs) return;
        this.intervalMs = next;
        if (this.running) this.schedule(); // re-arm with the new interval from now
      }),
    );
  }

  /** The latest sample, or null before the first one. */
  latest(): SystemMetrics | null {
    return this.last;
  }

  get interval(): number {
    return this.intervalMs;
  }

  /** The latest sample; before the first one, one taken now (null if even that fails). */
  async current(): Promise<SystemMetrics | null> {
    return this.last ?? (await this.sampleNow().catch(() => null));
  }

  /**
   * current() as JSON text, serialised once per sample however many requests ask for it: a
   * sample is a snapshot (nothing changes it after takeSample), so the text stays right until
   * the next one replaces it.
   */
  async currentJson(): Promise<string | null> {
    if (!(await this.current())) return null;
    return (this.lastJson ??= JSON.stringify(this.last));
  }

  /** Takes one sample at once; concurrent callers share it. */
  sampleNow(): Promise<SystemMetrics> {
    return (this.inProgress ??= this.takeSample().finally(() => (this.inProgress = null)));
  }

  /**
   * Takes the first sample (so the first API call has data), then loops. Old history is pruned
   * right after, off the start-up path: the first /api/monitoring waits for the sample, and a
   * write transaction before it cost 20-90 ms of the first start on a busy machine.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.tick(false);
    this.schedule();
    setTimeout(() => {
      if (!this.running) return;
      try {
        this.history.prune();
      } catch (err) {
        this.d.log.warn(`Pruning metric history failed: ${(err as Error).message}`);
      }
    }, 0);
  }

  /** Stops the loop and writes the minute in progress. Idempotent. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const off of this.unsubscribe.splice(0)) off();
    // A sample in flight would add to a minute after the flush; let it land first.
    await this.inProgress?.catch(() => {});
    try {
      this.history.flush();
    } catch (err) {
      this.d.log.warn(`Writing the last minute of metric history failed: ${(err as Error).message}`);
    }
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    if (!this.running) return;
    this.timer = setTimeout(() => void this.tick(true), this.intervalMs);
    // The loop alone must not keep the process alive.
    (this.timer as { unref?: () => void }).unref?.();
  }

  private async tick(reschedule: boolean): Promise<void> {
    try {
      await this.sampleNow();
    } catch (err) {
      this.d.log.error(`Metrics sample failed: ${(err as Error).message}`, { stack: (err as Error).stack });
    }
    if (reschedule) this.schedule();
  }

  /** Registered models; a failing registry read keeps the previous count rather than losing the sample. */
  private async registeredCount(): Promise<number> {
    try {
      return await this.d.registry.count();
    } catch {
      return this.last?.models.total ?? 0;
    }
  }

  private async takeSample(): Promise<SystemMetrics> {
    const d = this.d;
    const supervisor = d.supervisor;
    const runtimes = supervisor.runtimes();
    // Slow sources first, in parallel; each is bounded and falls back on its own, so neither
    // nvidia-smi nor a stuck llama-server can hold the rest of the sample.
    // The first sample (the one start-up and the first /api/monitoring wait for) does not wait
    // for nvidia-smi, a child process that can take a second: it goes out without gpu, and a
    // second sample follows as soon as nvidia-smi's first reading is in.
    const first = this.last === null && this.gpu.latest() === null;
    // (The first one starts nvidia-smi without awaiting even a zero timer for it: a timer waits
    // for the next turn of the event loop, which at start-up is behind every module's work.)
    const gpuP = first ? (void this.gpu.refresh(0), Promise.resolve(null)) : this.gpu.refresh(d.gpuWaitMs ?? Math.min(1000, this.intervalMs / 2));
    const llamaP = this.llama.read(runtimes);

    const timestamp = new Date();
    const cpu = d.cpu.sample();
    const memory = readMemory();
    const disk = readDisk(d.dataDir);
    let modelsDisk: DiskMetrics | undefined;
    const basePath = d.config.get().basePath;
    if (basePath) {
      const dev = deviceOf(basePath);
      if (dev !== undefined && dev !== deviceOf(d.dataDir)) modelsDisk = readDisk(basePath);
    }
    const req = d.requests.snapshot();
    const active = runtimes.filter((r) => r.state === "running");
    const memoryUsage = runtimes
      .filter((r) => r.state === "running" || r.state === "loading" || r.state === "stopping")
      .reduce((sum, r) => sum + (r.memoryUsage ?? 0), 0);

    const [gpu, llamaServers, registered] = await Promise.all([gpuP, llamaP, this.registeredCount()]);
    if (first && this.gpu.busy) {
      void this.gpu.idle().then(() => {
        if (this.running && this.gpu.latest()) void this.sampleNow().catch(() => {});
      });
    }
    const sample: SystemMetrics = {
      timestamp: timestamp.toISOString(),
      cpu,
      memory,
      disk,
      ...(gpu && gpu.gpus.length ? { gpu: gpu.gpus } : {}),
      models: { active: active.length, total: registered, memoryUsage: Math.round(memoryUsage) },
      requests: { total: req.total, active: req.active, averageResponseTime: req.averageResponseTime, errorRate: req.errorRate },
      uptime: Math.floor((timestamp.getTime() - d.startedAt.getTime()) / 1000),
      ...(modelsDisk ? { modelsDisk } : {}),
      ...(llamaServers.length ? { llamaServers } : {}),
    };
    this.last = sample;
    this.lastJson = null;
    try {
      this.history.addSample(sample, timestamp.getTime());
    } catch (err) {
      // The database may be busy or closing; the live sample is still good.
      d.log.warn(`Recording metric history failed: ${(err as Error).message}`);
    }
    d.bus.emit("metrics.sample", sample);
    return sample;
  }
}
