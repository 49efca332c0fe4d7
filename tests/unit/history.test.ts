import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { closeDatabase, openDatabase, type Db } from "../../src/db/client";
import { metricsMinute, type MetricsMinuteRow } from "../../src/db/schema";
import { MetricsHistory, RESOLUTIONS, minuteOf, type Resolution } from "../../src/metrics/history";
import type { SystemMetrics } from "../../src/metrics/types";

const MIN = 60_000;
// Mid-minute, so the window edges are not on a minute boundary.
const NOW = Date.UTC(2026, 0, 8, 12, 0, 30);

let db: Db;
let now = NOW;
let history: MetricsHistory;

beforeEach(() => {
  db = openDatabase(":memory:");
  now = NOW;
  history = new MetricsHistory(db, () => 168, () => now);
});
afterEach(() => closeDatabase(db));

function row(ts: number, over: Partial<MetricsMinuteRow> = {}): MetricsMinuteRow {
  return {
    ts, samples: 6, cpuAvg: 10, cpuMax: 20, memAvg: 50, memMax: 55,
    gpuUtilAvg: null, gpuUtilMax: null, gpuMemAvg: null, gpuMemMax: null,
    requests: 0, errors: 0, responseTimeAvg: null, tokensPerSecond: 0, promptTokens: 0, completionTokens: 0,
    ...over,
  };
}
const seed = (rows: MetricsMinuteRow[]) => {
  for (let i = 0; i < rows.length; i += 500) db.insert(metricsMinute).values(rows.slice(i, i + 500)).run();
};

function sample(at: number, cpu: number, mem: number, gpu?: number[]): SystemMetrics {
  return {
    timestamp: new Date(at).toISOString(),
    cpu: { usage: cpu, cores: 2, loadAverage: [0, 0, 0] },
    memory: { used: 0, total: 100, free: 100, usagePercent: mem },
    disk: { used: 0, total: 0, free: 0, usagePercent: 0 },
    ...(gpu ? { gpu: gpu.map((u, id) => ({ id, name: "GPU", utilization: u, memory: { used: 0, total: 100, free: 100, usagePercent: u / 2 } })) } : {}),
    models: { active: 0, total: 0, memoryUsage: 0 },
    requests: { total: 0, active: 0, averageResponseTime: 0, errorRate: 0 },
    uptime: 0,
  };
}

describe("bucketed queries", () => {
  test("the reference example: two 5m buckets give its exact summary", () => {
    const b1 = minuteOf(NOW) - 10 * MIN; // 11:50, a 5m boundary
    const b2 = b1 + 5 * MIN;
    seed([
      row(b1, { cpuAvg: 42.3, memAvg: 65.1, gpuUtilAvg: 78.4, requests: 12, responseTimeAvg: 234 }),
      row(b2, { cpuAvg: 45.2, memAvg: 67.8, gpuUtilAvg: 85.5, requests: 15, responseTimeAvg: 245 }),
    ]);
    const h = history.query(24, "5m");
    expect(h.period).toEqual({ start: new Date(NOW - 24 * 3_600_000).toISOString(), end: new Date(NOW).toISOString(), resolution: "5m" });
    expect(h.metrics.map(({ tokensPerSecond, ...p }) => p)).toEqual([
      { timestamp: new Date(b1).toISOString(), cpu: 42.3, memory: 65.1, gpu: 78.4, requests: 12, responseTime: 234 },
      { timestamp: new Date(b2).toISOString(), cpu: 45.2, memory: 67.8, gpu: 85.5, requests: 15, responseTime: 245 },
    ]);
    expect(h.summary).toEqual({ avgCpu: 43.75, maxCpu: 45.2, avgMemory: 66.45, maxMemory: 67.8, totalRequests: 27, avgResponseTime: 239.5 });
  });

  test("a 5m bucket averages its minutes and weights response time by requests", () => {
    const b = minuteOf(NOW) - 30 * MIN; // 11:30
    seed([
      row(b + 0 * MIN, { cpuAvg: 10, memAvg: 40, requests: 1, responseTimeAvg: 100, completionTokens: 600 }),
      row(b + 1 * MIN, { cpuAvg: 20, memAvg: 50, requests: 3, responseTimeAvg: 300 }),
      row(b + 2 * MIN, { cpuAvg: 60, memAvg: 60 }),
      // 11:33 and 11:34 missing: the bucket is built from the three minutes it has.
    ]);
    const [p] = history.query(1, "5m").metrics;
    expect(p).toEqual({
      timestamp: new Date(b).toISOString(),
      cpu: 30,
      memory: 50,
      requests: 4,
      responseTime: 250, // (1*100 + 3*300) / 4
      tokensPerSecond: 3.33, // 600 tokens over the 3 minutes present
    });
    expect(p).not.toHaveProperty("gpu");
  });

  test("gaps stay gaps: no bucket is invented where the proxy was down", () => {
    const start = minuteOf(NOW) - 120 * MIN;
    const rows: MetricsMinuteRow[] = [];
    for (let m = 0; m < 120; m++) if (m < 30 || m >= 90) rows.push(row(start + m * MIN, { cpuAvg: m }));
    seed(rows);
    const pts = history.query(3, "15m").metrics;
    const stamps = pts.map((p) => Date.parse(p.timestamp));
    // Down from start+30 to start+90: the buckets 10:30..11:15 do not exist.
    for (const s of stamps) expect(s < start + 30 * MIN || s >= start + 90 * MIN).toBe(true);
    expect(pts).toHaveLength(4); // 10:00, 10:15 before; 11:30, 11:45 after
    expect(history.query(3, "1m").metrics).toHaveLength(60);
  });

  test("gpu appears only in buckets that had GPU data", () => {
    const b = minuteOf(NOW) - 60 * MIN;
    seed([row(b, { gpuUtilAvg: 50, gpuMemAvg: 20 }), row(b + 1 * MIN, { gpuUtilAvg: 70, gpuMemAvg: 30 }), row(b + 30 * MIN)]);
    const pts = history.query(2, "15m").metrics;
    expect(pts[0]).toMatchObject({ gpu: 60, gpuMemory: 25 });
    expect(pts[1]).not.toHaveProperty("gpu");
    expect(pts[1]).not.toHaveProperty("gpuMemory");
    expect(history.query(2, "1m").metrics[1]).toMatchObject({ gpu: 70, gpuMemory: 30 });
  });

  test("rows outside the window are left out; an empty window has a zero summary", () => {
    seed([row(minuteOf(NOW) - 2 * 3_600_000 - MIN, { requests: 9, responseTimeAvg: 5 })]);
    const h = history.query(2, "1m");
    expect(h.metrics).toEqual([]);
    expect(h.summary).toEqual({ avgCpu: 0, maxCpu: 0, avgMemory: 0, maxMemory: 0, totalRequests: 0, avgResponseTime: 0 });
    expect(history.query(3, "1m").metrics).toHaveLength(1);
  });

  test("every hours/resolution pair agrees with a direct computation over 7 days of minute rows", () => {
    // Deterministic pseudo-random values; every 97th minute missing, GPU only in the last 3 days.
    let x = 12345;
    const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const first = minuteOf(NOW) - 7 * 24 * 60 * MIN;
    const rows: MetricsMinuteRow[] = [];
    for (let m = 0; m <= 7 * 24 * 60; m++) {
      if (m % 97 === 0) continue;
      const ts = first + m * MIN;
      const requests = Math.floor(rnd() * 5);
      rows.push(row(ts, {
        cpuAvg: rnd() * 100, memAvg: 30 + rnd() * 40,
        gpuUtilAvg: ts > NOW - 3 * 24 * 3_600_000 ? rnd() * 100 : null,
        requests, responseTimeAvg: requests ? 50 + rnd() * 500 : null,
        completionTokens: requests * 20,
      }));
    }
    seed(rows);
    const r2 = (n: number) => Math.round(n * 100) / 100;
    for (const hours of [1, 7, 24, 168]) {
      for (const res of Object.keys(RESOLUTIONS) as Resolution[]) {
        const bucketMs = RESOLUTIONS[res] * MIN;
        const start = NOW - hours * 3_600_000;
        const inWindow = rows.filter((r) => r.ts >= minuteOf(start) && r.ts <= NOW);
        const groups = new Map<number, MetricsMinuteRow[]>();
        for (const r of inWindow) {
          const k = Math.floor(r.ts / bucketMs) * bucketMs;
          const g = groups.get(k);
          if (g) g.push(r);
          else groups.set(k, [r]);
        }
        const want = [...groups].sort(([a], [b]) => a - b).map(([k, rs]) => {
          const gpus = rs.filter((r) => r.gpuUtilAvg !== null);
          const reqs = rs.reduce((s, r) => s + r.requests, 0);
          return {
            timestamp: new Date(k).toISOString(),
            cpu: r2(rs.reduce((s, r) => s + r.cpuAvg, 0) / rs.length),
            memory: r2(rs.reduce((s, r) => s + r.memAvg, 0) / rs.length),
            ...(gpus.length ? { gpu: r2(gpus.reduce((s, r) => s + r.gpuUtilAvg!, 0) / gpus.length) } : {}),
            requests: reqs,
            responseTime: r2(reqs ? rs.reduce((s, r) => s + (r.responseTimeAvg ?? 0) * r.requests, 0) / reqs : 0),
            tokensPerSecond: r2(rs.reduce((s, r) => s + r.completionTokens, 0) / (rs.length * 60)),
          };
        });
        const got = history.query(hours, res);
        expect(got.metrics.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) {
          const g = got.metrics[i]!;
          const w = want[i]!;
          expect(g.timestamp).toBe(w.timestamp);
          expect(g.requests).toBe(w.requests);
          for (const k of ["cpu", "memory", "responseTime", "tokensPerSecond"] as const) expect(g[k]).toBeCloseTo(w[k], 1);
          if (w.gpu === undefined) expect(g).not.toHaveProperty("gpu");
          else expect(g.gpu!).toBeCloseTo(w.gpu, 1);
        }
        const cpus = got.metrics.map((p) => p.cpu);
        expect(got.summary.maxCpu).toBe(Math.max(...cpus));
        expect(got.summary.totalRequests).toBe(inWindow.reduce((s, r) => s + r.requests, 0));
        expect(got.summary.avgCpu).toBeCloseTo(cpus.reduce((a, b) => a + b, 0) / cpus.length, 1);
      }
    }
  });
});

describe("minute rollups", () => {
  const m0 = minuteOf(NOW) - 5 * MIN;
  const all = () => db.select().from(metricsMinute).orderBy(metricsMinute.ts).all();

  test("samples and requests of one minute become one row when the next minute starts", () => {
    history.addSample(sample(m0 + 1_000, 10, 40, [80, 40]), m0 + 1_000);
    history.addSample(sample(m0 + 11_000, 30, 60, [100, 60]), m0 + 11_000);
    history.addRequest({ durationMs: 100, error: false, completionTokens: 30 }, m0 + 12_000);
    history.addRequest({ durationMs: 300, error: true, promptTokens: 7 }, m0 + 13_000);
    expect(all()).toHaveLength(0); // the minute is still open
    history.addSample(sample(m0 + MIN + 1_000, 50, 50), m0 + MIN + 1_000);
    const [r] = all();
    expect(r).toEqual({
      ts: m0, samples: 2, cpuAvg: 20, cpuMax: 30, memAvg: 50, memMax: 60,
      gpuUtilAvg: 70, gpuUtilMax: 80, gpuMemAvg: 35, gpuMemMax: 40, // GPUs averaged per sample
      requests: 2, errors: 1, responseTimeAvg: 200, tokensPerSecond: 0.5, promptTokens: 7, completionTokens: 30,
    });
  });

  test("flush writes the open minute; more samples in that minute merge into the same row", () => {
    history.addSample(sample(m0 + 1_000, 10, 40), m0 + 1_000);
    history.flush();
    expect(all()).toMatchObject([{ ts: m0, samples: 1, cpuAvg: 10 }]);
    // A restart within the same minute.
    const again = new MetricsHistory(db, () => 168, () => now);
    again.addSample(sample(m0 + 30_000, 40, 40), m0 + 30_000);
    again.addSample(sample(m0 + 40_000, 40, 40), m0 + 40_000);
    again.addRequest({ durationMs: 90, error: false }, m0 + 41_000);
    again.flush();
    expect(all()).toMatchObject([{ ts: m0, samples: 3, cpuAvg: 30, cpuMax: 40, requests: 1, responseTimeAvg: 90 }]);
  });

  test("a minute with no sample and no request writes no row", () => {
    history.addSample(sample(m0 + 1_000, 10, 40), m0 + 1_000);
    history.addSample(sample(m0 + 3 * MIN, 10, 40), m0 + 3 * MIN); // the proxy slept two minutes
    history.flush();
    expect(all().map((r) => r.ts)).toEqual([m0, m0 + 3 * MIN]);
  });

  test("retention: prune removes rows older than the configured hours", () => {
    let hours = 168;
    const h = new MetricsHistory(db, () => hours, () => now);
    seed([row(NOW - 200 * 3_600_000), row(NOW - 169 * 3_600_000), row(NOW - 167 * 3_600_000), row(minuteOf(NOW))]);
    h.prune();
    expect(all()).toHaveLength(2);
    hours = 1;
    h.prune();
    expect(all().map((r) => r.ts)).toEqual([minuteOf(NOW)]);
  });
});
