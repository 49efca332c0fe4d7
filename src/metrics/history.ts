import { and, gte, lt, lte, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { metricsMinute, type MetricsMinuteRow } from "../db/schema";
import type { SystemMetrics } from "./types";

export const RESOLUTIONS = { "1m": 1, "5m": 5, "15m": 15, "1h": 60 } as const;
export type Resolution = keyof typeof RESOLUTIONS;

const MINUTE = 60_000;
const round2 = (n: number) => Math.round(n * 100) / 100;

/** A request as the rollup counts it (the "request.completed" payload, trimmed). */
export interface CompletedRequest {
  durationMs: number;
  error: boolean;
  promptTokens?: number;
  completionTokens?: number;
}

/** One bucket of GET /api/monitoring/history, the seed API's shape plus tokensPerSecond. */
export interface HistoryPoint {
  timestamp: string;
  cpu: number;
  memory: number;
  gpu?: number;
  /** GPU memory used, % (beyond the seed API; present when `gpu` is). */
  gpuMemory?: number;
  requests: number;
  responseTime: number;
  tokensPerSecond: number;
}

export interface HistoryResponse {
  period: { start: string; end: string; resolution: string };
  metrics: HistoryPoint[];
  summary: { avgCpu: number; maxCpu: number; avgMemory: number; maxMemory: number; totalRequests: number; avgResponseTime: number };
}

interface Acc {
  minute: number;
  samples: number;
  cpuSum: number; cpuMax: number;
  memSum: number; memMax: number;
  gpuSamples: number; gpuUtilSum: number; gpuUtilMax: number; gpuMemSum: number; gpuMemMax: number;
  requests: number; errors: number; durationSum: number;
  promptTokens: number; completionTokens: number;
}

const newAcc = (minute: number): Acc => ({
  minute, samples: 0, cpuSum: 0, cpuMax: 0, memSum: 0, memMax: 0,
  gpuSamples: 0, gpuUtilSum: 0, gpuUtilMax: 0, gpuMemSum: 0, gpuMemMax: 0,
  requests: 0, errors: 0, durationSum: 0, promptTokens: 0, completionTokens: 0,
});

export const minuteOf = (ms: number) => Math.floor(ms / MINUTE) * MINUTE;

/**
 * Metric history: the single owner of the in-memory rollup of the current minute and of the
 * metrics_minute table. Samples and completed requests accumulate for the minute they fall in;
 * the first one of a later minute writes the finished minute as one row. A minute in which
 * nothing was recorded (the proxy was down) gets no row, so it shows as a gap, never as zeros.
 */
export class MetricsHistory {
  private acc: Acc | null = null;
  /** The latest sample's cpu/memory, for a minute that saw requests but no sample (long intervals). */
  private lastCpu = 0;
  private lastMem = 0;
  private lastPruneAt = 0;
  private statements = new Map<Resolution, ReturnType<MetricsHistory["buildStatement"]>>();

  constructor(
    private readonly db: Db,
    private readonly retentionHours: () => number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Adds a sample to its minute (writing the previous minute first when it has ended). */
  addSample(m: SystemMetrics, at = Date.parse(m.timestamp)): void {
    const a = this.accFor(at);
    a.samples++;
    a.cpuSum += m.cpu.usage;
    a.cpuMax = Math.max(a.cpuMax, m.cpu.usage);
    a.memSum += m.memory.usagePercent;
    a.memMax = Math.max(a.memMax, m.memory.usagePercent);
    this.lastCpu = m.cpu.usage;
    this.lastMem = m.memory.usagePercent;
    if (m.gpu && m.gpu.length) {
      // Several GPUs count as their mean: one line on the chart, like the seed API's `gpu`.
      const util = m.gpu.reduce((s, g) => s + g.utilization, 0) / m.gpu.length;
      const mem = m.gpu.reduce((s, g) => s + g.memory.usagePercent, 0) / m.gpu.length;
      a.gpuSamples++;
      a.gpuUtilSum += util;
      a.gpuUtilMax = Math.max(a.gpuUtilMax, util);
      a.gpuMemSum += mem;
      a.gpuMemMax = Math.max(a.gpuMemMax, mem);
    }
  }

  /** Counts a finished proxied request in the minute it finished. */
  addRequest(r: CompletedRequest, at = this.now()): void {
    const a = this.accFor(at);
    a.requests++;
    if (r.error) a.errors++;
    a.durationSum += r.durationMs;
    a.promptTokens += r.promptTokens ?? 0;
    a.completionTokens += r.completionTokens ?? 0;
  }

  /** Writes the minute in progress (shutdown). A later sample of the same minute merges into it. */
  flush(): void {
    if (this.acc) this.write(this.acc);
    this.acc = null;
  }

  private accFor(at: number): Acc {
    const minute = minuteOf(at);
    if (this.acc && this.acc.minute !== minute) {
      // Samples arrive in time order from one loop; a late request event for a finished minute
      // is counted in the current one rather than rewriting history.
      if (minute < this.acc.minute) return this.acc;
      this.write(this.acc);
      this.acc = null;
    }
    return (this.acc ??= newAcc(minute));
  }

  private write(a: Acc): void {
    if (a.samples === 0 && a.requests === 0) return;
    const n = a.samples;
    const row: MetricsMinuteRow = {
      ts: a.minute,
      samples: n,
      cpuAvg: n ? a.cpuSum / n : this.lastCpu,
      cpuMax: n ? a.cpuMax : this.lastCpu,
      memAvg: n ? a.memSum / n : this.lastMem,
      memMax: n ? a.memMax : this.lastMem,
      gpuUtilAvg: a.gpuSamples ? a.gpuUtilSum / a.gpuSamples : null,
      gpuUtilMax: a.gpuSamples ? a.gpuUtilMax : null,
      gpuMemAvg: a.gpuSamples ? a.gpuMemSum / a.gpuSamples : null,
      gpuMemMax: a.gpuSamples ? a.gpuMemMax : null,
      requests: a.requests,
      errors: a.errors,
      responseTimeAvg: a.requests ? a.durationSum / a.requests : null,
      // Throughput over the minute: generated tokens per wall-clock second.
      tokensPerSecond: a.completionTokens / 60,
      promptTokens: a.promptTokens,
      completionTokens: a.completionTokens,
    };
    const t = metricsMinute;
    // The same minute can be written twice (flush at shutdown, restart within the minute):
    // merge, weighting averages by sample / request counts.
    this.db
      .insert(t)
      .values(row)
      .onConflictDoUpdate({
        target: t.ts,
        set: {
          cpuAvg: sql`(${t.cpuAvg} * ${t.samples} + excluded.cpu_avg * excluded.samples) / max(${t.samples} + excluded.samples, 1)`,
          memAvg: sql`(${t.memAvg} * ${t.samples} + excluded.mem_avg * excluded.samples) / max(${t.samples} + excluded.samples, 1)`,
          cpuMax: sql`max(${t.cpuMax}, excluded.cpu_max)`,
          memMax: sql`max(${t.memMax}, excluded.mem_max)`,
          gpuUtilAvg: sql`coalesce((${t.gpuUtilAvg} + excluded.gpu_util_avg) / 2, ${t.gpuUtilAvg}, excluded.gpu_util_avg)`,
          gpuUtilMax: sql`coalesce(max(${t.gpuUtilMax}, excluded.gpu_util_max), ${t.gpuUtilMax}, excluded.gpu_util_max)`,
          gpuMemAvg: sql`coalesce((${t.gpuMemAvg} + excluded.gpu_mem_avg) / 2, ${t.gpuMemAvg}, excluded.gpu_mem_avg)`,
          gpuMemMax: sql`coalesce(max(${t.gpuMemMax}, excluded.gpu_mem_max), ${t.gpuMemMax}, excluded.gpu_mem_max)`,
          responseTimeAvg: sql`case when ${t.requests} + excluded.requests = 0 then null else (coalesce(${t.responseTimeAvg}, 0) * ${t.requests} + coalesce(excluded.response_time_avg, 0) * excluded.requests) / (${t.requests} + excluded.requests) end`,
          samples: sql`${t.samples} + excluded.samples`,
          requests: sql`${t.requests} + excluded.requests`,
          errors: sql`${t.errors} + excluded.errors`,
          promptTokens: sql`${t.promptTokens} + excluded.prompt_tokens`,
          completionTokens: sql`${t.completionTokens} + excluded.completion_tokens`,
          tokensPerSecond: sql`(${t.completionTokens} + excluded.completion_tokens) / 60.0`,
        },
      })
      .run();
    this.pruneIfDue();
  }

  /** Deletes rows older than the retention. Cheap (range delete on the primary key). */
  prune(): void {
    this.lastPruneAt = this.now();
    const cutoff = this.now() - this.retentionHours() * 3_600_000;
    this.db.delete(metricsMinute).where(lt(metricsMinute.ts, cutoff)).run();
  }

  private pruneIfDue(): void {
    if (this.now() - this.lastPruneAt >= 10 * MINUTE) this.prune();
  }

  private statementFor(resolution: Resolution) {
    let st = this.statements.get(resolution);
    if (!st) this.statements.set(resolution, (st = this.buildStatement(resolution)));
    return st;
  }

  /**
   * One prepared statement per resolution (built once: the query is the same every time but for
   * the window). Minute rows whose minute started inside the window are read in primary-key
   * order; at 1m each row is its own bucket, so no GROUP BY (and no sort) is needed.
   */
  private buildStatement(resolution: Resolution) {
    const t = metricsMinute;
    const window = and(gte(t.ts, sql.placeholder("start")), lte(t.ts, sql.placeholder("end")));
    if (resolution === "1m") {
      return this.db
        .select({
          bucket: t.ts,
          cpu: t.cpuAvg,
          memory: t.memAvg,
          gpu: t.gpuUtilAvg,
          requests: t.requests,
          // Per-minute average already; times requests to match the grouped form below.
          responseTimeWeighted: sql<number>`coalesce(${t.responseTimeAvg} * ${t.requests}, 0)`,
          completionTokens: t.completionTokens,
          minutes: sql<number>`1`,
          gpuMemory: t.gpuMemAvg,
        })
        .from(t)
        .where(window)
        .orderBy(t.ts)
        .prepare();
    }
    // bucketMs comes from the fixed RESOLUTIONS table, never from the request: safe to inline,
    // and inlining lets SQLite see the same expression in SELECT and GROUP BY.
    const bucketMs = sql.raw(String(RESOLUTIONS[resolution] * MINUTE));
    const bucket = sql<number>`(${t.ts} / ${bucketMs}) * ${bucketMs}`;
    return this.db
      .select({
        bucket,
        cpu: sql<number>`avg(${t.cpuAvg})`,
        memory: sql<number>`avg(${t.memAvg})`,
        gpu: sql<number | null>`avg(${t.gpuUtilAvg})`,
        requests: sql<number>`sum(${t.requests})`,
        // Divided by `requests` in JS: the mean response time weighted by requests. A minute's
        // response_time_avg is null exactly when it had no requests, so those add nothing.
        responseTimeWeighted: sql<number>`coalesce(sum(${t.responseTimeAvg} * ${t.requests}), 0)`,
        completionTokens: sql<number>`sum(${t.completionTokens})`,
        minutes: sql<number>`count(*)`,
        gpuMemory: sql<number | null>`avg(${t.gpuMemAvg})`,
      })
      .from(t)
      .where(window)
      .groupBy(bucket)
      .orderBy(bucket)
      .prepare();
  }

  /**
   * The buckets of the last `hours` at `resolution`, computed in SQL from the minute rows:
   * a bucket exists only where at least one minute row does (gaps stay gaps). A bucket is
   * stamped with its start. `summary` follows the seed API: averages and maxima over the
   * returned points, total requests, and the mean response time over points that had requests.
   */
  query(hours: number, resolution: Resolution): HistoryResponse {
    const end = this.now();
    const start = end - hours * 3_600_000;
    const bucketMs = RESOLUTIONS[resolution] * MINUTE;
    // Positional rows (.values()) skip the per-row object mapping: at 1m over 7 days that is
    // 10,080 rows, and the mapping cost more than the query.
    const rows = this.statementFor(resolution).values({ start: minuteOf(start), end }) as unknown as Array<
      [bucket: number, cpu: number, memory: number, gpu: number | null, requests: number, responseTimeWeighted: number, completionTokens: number, minutes: number, gpuMemory: number | null]
    >;

    const metrics: HistoryPoint[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const [bucket, cpu, memory, gpu, requests, rtWeighted, completionTokens, minutes, gpuMemory] = rows[i]!;
      const p: HistoryPoint = {
        timestamp: new Date(bucket).toISOString(),
        cpu: round2(cpu),
        memory: round2(memory),
        requests,
        responseTime: requests ? round2(rtWeighted / requests) : 0,
        // Throughput over the minutes the bucket actually has (a partly-gapped bucket is not diluted).
        tokensPerSecond: round2(completionTokens / (minutes * 60)),
      };
      if (gpu !== null) p.gpu = round2(gpu);
      if (gpuMemory !== null) p.gpuMemory = round2(gpuMemory);
      metrics[i] = p;
    }

    const withRequests = metrics.filter((p) => p.requests > 0);
    const mean = (xs: number[]) => (xs.length ? round2(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);
    return {
      period: { start: new Date(start).toISOString(), end: new Date(end).toISOString(), resolution },
      metrics,
      summary: {
        avgCpu: mean(metrics.map((p) => p.cpu)),
        maxCpu: metrics.length ? Math.max(...metrics.map((p) => p.cpu)) : 0,
        avgMemory: mean(metrics.map((p) => p.memory)),
        maxMemory: metrics.length ? Math.max(...metrics.map((p) => p.memory)) : 0,
        totalRequests: metrics.reduce((s, p) => s + p.requests, 0),
        avgResponseTime: mean(withRequests.map((p) => p.responseTime)),
      },
    };
  }
}
