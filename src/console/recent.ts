import type { EventBus } from "../events";
import type { SystemMetrics } from "../metrics/types";
import type { RequestStats } from "../proxy/stats";

/** One point of the dashboard's sparklines. */
export interface RecentPoint {
  /** Epoch ms. */
  t: number;
  cpu: number;
  memory: number;
  disk: number;
  gpuUtil?: number;
  gpuMem?: number;
  gpuTemp?: number;
  /** Cumulative proxied requests at this point (the rate is the difference of two points). */
  requestsTotal: number;
  averageResponseTime: number;
  tokensPerSecond: number;
}

/**
 * The last few collector samples, for the dashboard's sparklines: the console's own short
 * memory (the collector owns history in SQLite; this is only what the dashboard draws).
 * It fills from the "metrics.sample" bus event, so it is empty until the collector runs.
 */
export class RecentMetrics {
  private points: RecentPoint[] = [];
  readonly dispose: () => void;

  constructor(
    bus: EventBus,
    private readonly requests: RequestStats,
    private readonly capacity = 60,
  ) {
    this.dispose = bus.on("metrics.sample", (m) => this.add(m));
  }

  add(m: SystemMetrics): void {
    const gpus = m.gpu ?? [];
    const avg = (f: (g: NonNullable<SystemMetrics["gpu"]>[number]) => number | undefined) => {
      const xs = gpus.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
      return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
    };
    const snap = this.requests.snapshot();
    const t = Date.parse(m.timestamp);
    this.points.push({
      t: Number.isFinite(t) ? t : Date.now(),
      cpu: m.cpu.usage,
      memory: m.memory.usagePercent,
      disk: m.disk.usagePercent,
      gpuUtil: avg((g) => g.utilization),
      gpuMem: avg((g) => g.memory.usagePercent),
      gpuTemp: avg((g) => g.temperature),
      requestsTotal: Math.max(m.requests.total, snap.total),
      averageResponseTime: m.requests.averageResponseTime,
      tokensPerSecond: snap.tokensPerSecond,
    });
    if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity);
  }

  list(): RecentPoint[] {
    return this.points.slice();
  }

  /** Requests per minute over the span of the kept points (0 with fewer than two). */
  requestRate(): number {
    const p = this.points;
    if (p.length < 2) return 0;
    const a = p[0]!;
    const b = p[p.length - 1]!;
    // At least a minute of denominator: right after start, 1 request in 10 s is "1 /min", not
    // an extrapolated 6 /min.
    const minutes = Math.max(1, (b.t - a.t) / 60000);
    return Math.max(0, (b.requestsTotal - a.requestsTotal) / minutes);
  }
}
