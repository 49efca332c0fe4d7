import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { createApp } from "../../src/app";
import { metricsMinute, type MetricsMinuteRow } from "../../src/db/schema";
import { minuteOf } from "../../src/metrics/history";
import { createServices, shutdownServices, type Services } from "../../src/services";

let dir: string;
let s: Services;
let app: ReturnType<typeof createApp>;

function build(apiKey?: string) {
  s = createServices({
    port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"),
    logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:", ...(apiKey ? { apiKey } : {}),
  });
  app = createApp(s);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lap-monitoring-"));
  build();
});
afterEach(async () => {
  await shutdownServices(s);
  rmSync(dir, { recursive: true, force: true });
});

const get = async (path: string, headers: Record<string, string> = {}) => {
  const res = await app.request(path, { headers });
  return { res, body: (await res.json()) as any };
};

describe("GET /api/monitoring", () => {
  test("answers the full SystemMetrics from a sample, truthful about this machine", async () => {
    const { res, body } = await get("/api/monitoring");
    expect(res.status).toBe(200);
    expect(body.success).toBe(true);
    expect(typeof body.timestamp).toBe("string");
    const m = body.data;
    expect(Date.parse(m.timestamp)).toBeGreaterThan(Date.now() - 60_000);
    expect(m.cpu.cores).toBe(navigator.hardwareConcurrency);
    expect(m.cpu.loadAverage).toHaveLength(3);
    const memTotalKb = Number(readFileSync("/proc/meminfo", "utf8").match(/^MemTotal:\s+(\d+)/m)![1]);
    expect(m.memory.total).toBe(Math.round(memTotalKb / 1024));
    expect(m.memory.used + m.memory.free).toBeCloseTo(m.memory.total, -1);
    expect(m.disk.total).toBeGreaterThan(0);
    expect(m.disk.used + m.disk.free).toBeLessThanOrEqual(m.disk.total);
    expect(m.models).toEqual({ active: 0, total: 0, memoryUsage: 0 });
    expect(m.requests).toEqual({ total: 0, active: 0, averageResponseTime: 0, errorRate: 0 });
    expect(m.uptime).toBeGreaterThanOrEqual(0);
    if (!Bun.which("nvidia-smi")) expect(m).not.toHaveProperty("gpu");
  });

  test("answers from the collector's latest sample, not a new one per call", async () => {
    const first = await s.collector.sampleNow();
    const { body } = await get("/api/monitoring");
    expect(body.data.timestamp).toBe(first.timestamp);
    // /api/health's system block reads the same sample.
    const health = await get("/api/health");
    expect(health.body.data.system).toEqual({ cpu_usage: first.cpu.usage, memory_usage: first.memory.usagePercent, disk_usage: first.disk.usagePercent });
  });

  test("serialises each sample once however many requests read it, and a new sample replaces the text", async () => {
    const first = await s.collector.sampleNow();
    const realStringify = JSON.stringify;
    let samplesSerialised = 0;
    JSON.stringify = ((value: unknown, ...rest: unknown[]) => {
      if (value === first || (value as { data?: unknown } | null)?.data === first) samplesSerialised++;
      return (realStringify as (...a: unknown[]) => string)(value, ...rest);
    }) as typeof JSON.stringify;
    let answers: Response[];
    try {
      answers = await Promise.all(Array.from({ length: 5 }, () => app.request("/api/monitoring")));
    } finally {
      JSON.stringify = realStringify;
    }
    expect(samplesSerialised).toBe(1);
    for (const res of answers) {
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/json");
      const text = await res.text();
      const body = JSON.parse(text);
      // Byte for byte what ok(c, sample) would have sent: the envelope around the sample's JSON.
      expect(text).toBe(realStringify({ success: true, data: first, timestamp: body.timestamp }));
      expect(Date.parse(body.timestamp)).toBeGreaterThan(Date.now() - 60_000);
    }
    const second = await s.collector.sampleNow();
    expect(second.timestamp >= first.timestamp).toBe(true);
    const { body } = await get("/api/monitoring");
    expect(body.data).toEqual(JSON.parse(realStringify(second)));
    expect(body.data.cpu).toEqual(second.cpu);
  });
});

describe("GET /api/monitoring/history", () => {
  const MIN = 60_000;
  function seed(minutesAgo: number[], over: Partial<MetricsMinuteRow> = {}) {
    const base = minuteOf(Date.now());
    s.db.insert(metricsMinute).values(
      minutesAgo.map((ago, i) => ({
        ts: base - ago * MIN, samples: 6, cpuAvg: 10 + i, cpuMax: 90, memAvg: 40, memMax: 41,
        requests: 2, errors: 0, responseTimeAvg: 100 + i, promptTokens: 0, completionTokens: 0, ...over,
      })),
    ).run();
  }

  test("defaults: 24 hours at 5m, the reference's period and summary", async () => {
    seed([30, 29, 10]);
    const { res, body } = await get("/api/monitoring/history");
    expect(res.status).toBe(200);
    const { period, metrics, summary } = body.data;
    expect(period.resolution).toBe("5m");
    expect(Date.parse(period.end) - Date.parse(period.start)).toBe(24 * 3_600_000);
    expect(Object.keys(body.data).sort()).toEqual(["metrics", "period", "summary"]);
    expect(Object.keys(summary).sort()).toEqual(["avgCpu", "avgMemory", "avgResponseTime", "maxCpu", "maxMemory", "totalRequests"]);
    expect(summary.totalRequests).toBe(6);
    for (const p of metrics) {
      expect(Date.parse(p.timestamp) % (5 * MIN)).toBe(0);
      expect(p).not.toHaveProperty("gpu"); // no GPU data was recorded
      for (const k of ["cpu", "memory", "requests", "responseTime"]) expect(typeof p[k]).toBe("number");
    }
    // 30 and 29 minutes ago can share a 5m bucket or not, depending on the clock; 10 is apart.
    expect(metrics.length === 2 || metrics.length === 3).toBe(true);
  });

  test("every resolution and the hours limits are accepted", async () => {
    seed([0 + 1, 61, 24 * 60 + 1, 167 * 60]);
    for (const resolution of ["1m", "5m", "15m", "1h"]) {
      for (const hours of [1, 2, 24, 168]) {
        const { res, body } = await get(`/api/monitoring/history?hours=${hours}&resolution=${resolution}`);
        expect(res.status).toBe(200);
        expect(body.data.period.resolution).toBe(resolution);
        const expected = [1, 61, 24 * 60 + 1, 167 * 60].filter((ago) => ago * MIN < hours * 3_600_000).length;
        expect(body.data.metrics.length).toBe(expected);
        expect(body.data.summary.totalRequests).toBe(expected * 2);
      }
    }
  });

  test("GPU shows up in points only when GPU data was recorded", async () => {
    seed([3], { gpuUtilAvg: 77, gpuUtilMax: 90, gpuMemAvg: 10, gpuMemMax: 10 });
    const { body } = await get("/api/monitoring/history?hours=1&resolution=1m");
    expect(body.data.metrics[0].gpu).toBe(77);
  });

  test("an unreadable history is a 503 SERVICE_UNAVAILABLE envelope, not a crash", async () => {
    s.db.$client.close();
    const { res, body } = await get("/api/monitoring/history");
    expect(res.status).toBe(503);
    expect(body.error.code).toBe("SERVICE_UNAVAILABLE");
  });

  test.each([
    ["hours=0", "hours"],
    ["hours=169", "hours"],
    ["hours=abc", "hours"],
    ["hours=1.5", "hours"],
    ["hours=-3", "hours"],
    ["hours=", "hours"],
    ["resolution=2m", "resolution"],
    ["resolution=", "resolution"],
  ])("?%s is a 400 VALIDATION_ERROR naming %s", async (qs, field) => {
    const { res, body } = await get(`/api/monitoring/history?${qs}`);
    expect(res.status).toBe(400);
    expect(body.success).toBe(false);
    expect(body.error.code).toBe("VALIDATION_ERROR");
    expect(body.error.details).toContain(field);
  });
});

describe("GET /metrics", () => {
  test("Prometheus text that a real parser reads, with request counters from the proxy", async () => {
    s.requests.begin(null, "/v1/chat/completions").end({ status: 404 });
    const res = await app.request("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const parsed = parsePrometheusTextFormat(await res.text());
    const total = parsed.find((f) => f.name === "llamaproxy_requests_total")!;
    expect(total.metrics.reduce((n, m) => n + Number(m.value), 0)).toBe(1);
    expect(parsed.find((f) => f.name === "llamaproxy_memory_total_bytes")).toBeDefined();
  });

  test("needs the API key when one is set", async () => {
    await shutdownServices(s);
    build("sekret");
    expect((await app.request("/metrics")).status).toBe(401);
    const ok = await app.request("/metrics", { headers: { Authorization: "Bearer sekret" } });
    expect(ok.status).toBe(200);
  });
});
