import type { Logger } from "../logs/logger";
import type { GpuMetrics } from "./types";

/** One process holding GPU memory, as nvidia-smi lists it (for per-model memory accounting). */
export interface GpuProcess {
  gpuId: number;
  pid: number;
  name: string;
  /** MB (nvidia-smi's MiB). */
  usedMemory: number;
}

export interface GpuReading {
  gpus: GpuMetrics[];
  processes: GpuProcess[];
  /** When nvidia-smi produced it (ISO). */
  at: string;
}

const round1 = (n: number) => Math.round(n * 10) / 10;

/** "21491 MiB" -> 21491, "100 %" -> 100, "62 C" -> 62, "N/A" / "[N/A]" / missing -> undefined. */
export function smiNumber(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const m = value.trim().match(/^-?\d+(\.\d+)?/);
  return m ? Number(m[0]) : undefined;
}

const asArray = <T>(v: T | T[] | undefined | null | ""): T[] => (v === undefined || v === null || v === "" ? [] : Array.isArray(v) ? v : [v]);

/**
 * Maps node-nvidia-smi's object (xml2js of `nvidia-smi -q -x`) to the seed API's GpuMetrics.
 * `id` is nvidia-smi's own index (minor_number), so it matches `nvidia-smi -i` and the CSV's
 * index column. Memory is the framebuffer (fb_memory_usage), as nvidia-smi's table shows it.
 */
export function parseNvidiaSmi(data: unknown): GpuReading {
  const log = (data as { nvidia_smi_log?: Record<string, any> } | null)?.nvidia_smi_log;
  if (!log || typeof log !== "object") throw new Error("nvidia-smi output has no <nvidia_smi_log>");
  const gpus: GpuMetrics[] = [];
  const processes: GpuProcess[] = [];
  asArray<any>(log.gpu).forEach((g, index) => {
    const id = smiNumber(g.minor_number) ?? index;
    const total = smiNumber(g.fb_memory_usage?.total) ?? 0;
    const used = smiNumber(g.fb_memory_usage?.used) ?? 0;
    const free = smiNumber(g.fb_memory_usage?.free) ?? Math.max(0, total - used);
    const temperature = smiNumber(g.temperature?.gpu_temp);
    gpus.push({
      id,
      name: typeof g.product_name === "string" ? g.product_name : `GPU ${id}`,
      memory: { used, total, free, usagePercent: total > 0 ? round1((used / total) * 100) : 0 },
      utilization: smiNumber(g.utilization?.gpu_util) ?? 0,
      ...(temperature !== undefined ? { temperature } : {}),
    });
    for (const p of asArray<any>(g.processes?.process_info)) {
      const pid = smiNumber(p.pid);
      if (pid === undefined) continue;
      processes.push({ gpuId: id, pid, name: String(p.process_name ?? ""), usedMemory: smiNumber(p.used_memory) ?? 0 });
    }
  });
  return { gpus, processes, at: new Date().toISOString() };
}

/**
 * node-nvidia-smi as a promise. Without nvidia-smi on PATH it answers "not found" at once: the
 * library would fork a shell to learn that (a fork of this process costs more than the rest of a
 * sample), and its XML parser (xml2js, ~100 kB of code) is loaded only on a machine that has
 * nvidia-smi.
 */
export async function runNvidiaSmi(): Promise<unknown> {
  if (!Bun.which("nvidia-smi", { PATH: process.env.PATH ?? "" })) throw Object.assign(new Error("nvidia-smi: command not found"), { code: 127 });
  const { default: nvidiaSmi } = await import("node-nvidia-smi");
  return new Promise((resolve, reject) => nvidiaSmi((err, data) => (err ? reject(err) : resolve(data))));
}

export interface GpuReaderOptions {
  /** Produces the xml2js object (default: node-nvidia-smi). Injected by tests. */
  run?: () => Promise<unknown>;
  /** A read not finished by then counts as failed (the last good reading stays). */
  timeoutMs?: number;
  /** After "command not found", wait this long before trying again (it is not going to appear often). */
  missingRetryMs?: number;
  log?: Logger;
}

const describe = (err: unknown): string => {
  if (err instanceof Error) return err.message.trim();
  return String(err).trim();
};

/**
 * Reads GPUs through nvidia-smi without ever blocking its caller for long. The single owner of
 * the latest good GPU reading.
 *
 * Concurrency: at most one nvidia-smi runs at a time. node-nvidia-smi offers no way to kill its
 * child, so a slow nvidia-smi is not killed: callers stop waiting for it after `waitMs`, the last
 * good reading stays in use, and no second one is started while it is outstanding (a wedged
 * driver costs one stuck process, not one per sample). Its late answer, if any, is still taken.
 * A run that *fails* (not found, non-zero exit, unparsable output) drops the reading: gpu is
 * then omitted rather than shown frozen.
 */
export class GpuReader {
  private last: GpuReading | null = null;
  private running: Promise<void> | null = null;
  private failing = false;
  private retryAfter = 0;
  private readonly run: () => Promise<unknown>;
  private readonly timeoutMs: number;
  private readonly missingRetryMs: number;

  constructor(private readonly opts: GpuReaderOptions = {}) {
    this.run = opts.run ?? runNvidiaSmi;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.missingRetryMs = opts.missingRetryMs ?? 60_000;
  }

  /** The last good reading, or null when there is none (no GPU or nvidia-smi failing: omit gpu). */
  latest(): GpuReading | null {
    return this.last;
  }

  /** Whether nvidia-smi is currently failing or too slow. */
  get unavailable(): boolean {
    return this.failing;
  }

  /** Whether an nvidia-smi run is outstanding. */
  get busy(): boolean {
    return this.running !== null;
  }

  /** Settles when the outstanding run (if any) has ended, however it ended. */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /**
   * Starts a read unless one is outstanding; resolves when it ends or after `waitMs`, whichever
   * comes first. Never rejects. Returns latest().
   */
  async refresh(waitMs = this.timeoutMs): Promise<GpuReading | null> {
    if (!this.running && Date.now() >= this.retryAfter) this.running = this.start();
    if (this.running) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.running, new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, waitMs))))]);
      clearTimeout(timer);
    }
    return this.last;
  }

  private start(): Promise<void> {
    // Past timeoutMs the run counts as failing (one warning) but the reading is kept: a slow
    // driver is not a missing GPU.
    const slow = setTimeout(() => this.fail(new Error(`nvidia-smi did not answer within ${this.timeoutMs} ms`), false), this.timeoutMs);
    let run: Promise<unknown>;
    try {
      run = this.run();
    } catch (err) {
      run = Promise.reject(err);
    }
    return run
      .then(
        (data) => {
          this.last = parseNvidiaSmi(data);
          if (this.failing) this.opts.log?.info("nvidia-smi answers again; GPU metrics resumed");
          this.failing = false;
        },
      )
      .catch((err) => this.fail(err, true))
      .finally(() => {
        clearTimeout(slow);
        this.running = null;
      });
  }

  private fail(err: unknown, dropReading: boolean): void {
    const msg = describe(err);
    const missing = /not found|ENOENT/i.test(msg) || (err as { code?: unknown } | null)?.code === 127;
    if (missing) this.retryAfter = Date.now() + this.missingRetryMs;
    if (dropReading) this.last = null;
    // One warning per outage, not one per sample: only the transition into failing is logged.
    if (!this.failing) {
      this.opts.log?.warn(
        missing
          ? "nvidia-smi not found: GPU metrics are omitted"
          : `nvidia-smi failed, GPU metrics ${this.last ? "kept from the last good reading" : "omitted"}: ${msg.split("\n")[0]}`,
      );
    }
    this.failing = true;
  }
}
