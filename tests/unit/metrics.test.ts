import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { metricsMinute } from "../../src/db/schema";
import { GpuReader } from "../../src/metrics/gpu";
import { LlamaMetricsReader, llamaMetricsFrom, parsePrometheusSamples } from "../../src/metrics/llama-metrics";
import { CpuSampler, parseProcStat, readDisk, readMemory } from "../../src/metrics/system";
import type { SystemMetrics } from "../../src/metrics/types";
import { fakeSupervisorOf, fakeSupervisorOverrides } from "../helpers/fake-supervisor";
import { createServices, shutdownServices, type Services } from "../../src/services";
import type { ModelRuntimeInfo, SupervisorApi } from "../../src/supervisor/types";
import { waitFor } from "../helpers/services";

const LLAMA_METRICS = readFileSync(join(import.meta.dir, "../fixtures/llama-server/metrics.txt"), "utf8");


describe("system readings agree with the machine's own tools", () => {
  test("memory matches `free -b` (used = total - available)", async () => {
    const out = await Bun.$`free -b`.text();
    const [, total, , , , , available] = out.split("\n").find((l) => l.startsWith("Mem:"))!.trim().split(/\s+/).map(Number);
    const mem = readMemory();
    const MB = 1024 * 1024;
    expect(mem.total).toBe(Math.round(total! / MB));
    // Memory moves between the two readings; allow 2 % of the total.
    expect(Math.abs(mem.free - available! / MB)).toBeLessThan(total! / MB / 50);
    expect(Math.abs(mem.used - (total! - available!) / MB)).toBeLessThan(total! / MB / 50);
    expect(mem.usagePercent).toBeCloseTo((mem.used / mem.total) * 100, 0);
  });

  test("disk matches `df -B1` for the data directory's filesystem", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lap-disk-"));
    try {
      const line = (await Bun.$`df -B1 ${dir}`.text()).trim().split("\n").at(-1)!.trim().split(/\s+/);
      const [, size, used, avail] = line.map(Number);
      const disk = readDisk(dir);
      expect(disk.total).toBe(size!);
      // Other processes write meanwhile: within 0.5 % of the size.
      expect(Math.abs(disk.used - used!)).toBeLessThan(size! / 200);
      expect(Math.abs(disk.free - avail!)).toBeLessThan(size! / 200);
      expect(Math.ceil(disk.usagePercent)).toBeGreaterThanOrEqual(Number(line[4]!.replace("%", "")) - 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("CPU usage is the busy share between two /proc/stat readings; load average from /proc/loadavg", () => {
    const a = "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3";
    const b = "cpu  250 0 150 900 0 0 0 0 0 0\n";
    let text = a;
    const cpu = new CpuSampler(() => text);
    cpu.sample();
    text = b;
    // busy +200 of +300 jiffies
    expect(cpu.sample().usage).toBeCloseTo(66.7, 1);
    expect(parseProcStat("intr 1 2")).toBeNull();

    const real = new CpuSampler().sample();
    const la = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
    expect(real.cores).toBe(navigator.hardwareConcurrency);
    // The load average moves slowly; one reading apart they agree closely.
    real.loadAverage.forEach((v, i) => expect(Math.abs(v - la[i]!)).toBeLessThan(0.5));
  });
});

describe("llama-server /metrics", () => {
  test("the real fixture parses; first read takes llama-server's gauges", () => {
    const samples = parsePrometheusSamples(LLAMA_METRICS);
    expect(samples.get("llamacpp:prompt_tokens_total")).toBe(30);
    expect(samples.get("llamacpp:tokens_predicted_seconds_total")).toBe(0.003974);
    const { metrics } = llamaMetricsFrom("tiny", samples, undefined);
    expect(metrics).toMatchObject({ modelId: "tiny", promptTokensPerSecond: 0, predictedTokensPerSecond: 0, requestsProcessing: 0, requestsDeferred: 0, promptTokensTotal: 30, predictedTokensTotal: 12 });
  });

  test("rates come from counter deltas between reads; a restarted server does not go negative", () => {
    const first = llamaMetricsFrom("tiny", parsePrometheusSamples(LLAMA_METRICS), undefined);
    const later = LLAMA_METRICS.replace("llamacpp:tokens_predicted_total 12", "llamacpp:tokens_predicted_total 212")
      .replace("llamacpp:tokens_predicted_seconds_total 0.003974", "llamacpp:tokens_predicted_seconds_total 2.003974")
      .replace("llamacpp:prompt_tokens_total 30", "llamacpp:prompt_tokens_total 530")
      .replace("llamacpp:prompt_seconds_total 0.001947", "llamacpp:prompt_seconds_total 0.501947");
    const second = llamaMetricsFrom("tiny", parsePrometheusSamples(later), first.counters);
    expect(second.metrics.predictedTokensPerSecond).toBe(100);
    expect(second.metrics.promptTokensPerSecond).toBe(1000);
    const restarted = llamaMetricsFrom("tiny", parsePrometheusSamples(LLAMA_METRICS), second.counters);
    expect(restarted.metrics.predictedTokensPerSecond).toBe(0); // falls back to the gauge (0 here)
  });
});

/** A fake llama-server /metrics endpoint (the fixture), plus one without --metrics (501). */
let llama: ReturnType<typeof Bun.serve>;
let predicted = 12;
let predictedSeconds = 0.003974;
beforeAll(() => {
  llama = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/nometrics/metrics") return new Response("metrics disabled", { status: 501 });
      if (url.pathname !== "/metrics") return new Response("", { status: 404 });
      return new Response(
        LLAMA_METRICS.replace("llamacpp:tokens_predicted_total 12", `llamacpp:tokens_predicted_total ${predicted}`).replace(
          "llamacpp:tokens_predicted_seconds_total 0.003974",
          `llamacpp:tokens_predicted_seconds_total ${predictedSeconds}`,
        ),
      );
    },
  });
});
afterAll(() => llama.stop(true));

describe("LlamaMetricsReader", () => {
  test("reads running servers only, skips servers without --metrics or unreachable", async () => {
    const reader = new LlamaMetricsReader(1000);
    const base = `http://127.0.0.1:${llama.port}`;
    const out = await reader.read([
      { modelId: "a", state: "running", status: "running", restarts: 0, baseUrl: base },
      { modelId: "b", state: "running", status: "running", restarts: 0, baseUrl: `${base}/nometrics` },
      { modelId: "c", state: "stopped", status: "stopped", restarts: 0, baseUrl: base },
      { modelId: "d", state: "running", status: "running", restarts: 0, baseUrl: "http://127.0.0.1:1" },
    ]);
    expect(out.map((m) => m.modelId)).toEqual(["a"]);
  });
});

describe("MetricsCollector", () => {
  let s: Services;
  let dir: string;
  afterEach(async () => {
    await shutdownServices(s);
    rmSync(dir, { recursive: true, force: true });
  });

  function make(runtimes: ModelRuntimeInfo[] = []) {
    dir = mkdtempSync(join(tmpdir(), "lap-collector-"));
    s = createServices({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" }, fakeSupervisorOverrides);
    fakeSupervisorOf(s).put(...runtimes);
    return s;
  }

  test("a sample has the reference shape, models and requests from their owners, and is emitted", async () => {
    const base = `http://127.0.0.1:${llama.port}`;
    make([
      { modelId: "tiny", state: "running", status: "running", restarts: 0, baseUrl: base, memoryUsage: 300 },
      { modelId: "other", state: "loading", status: "loading", restarts: 0, memoryUsage: 100 },
      { modelId: "gone", state: "stopped", status: "stopped", restarts: 0 },
    ]);
    s.requests.begin("tiny", "/v1/chat/completions").end({ status: 200 });
    s.requests.begin("tiny", "/v1/chat/completions").end({ status: 500 });
    const seen: SystemMetrics[] = [];
    s.bus.on("metrics.sample", (m) => seen.push(m));
    const m = await s.collector.sampleNow();
    expect(seen).toEqual([m]);
    expect(s.collector.latest()).toBe(m);
    expect(Object.keys(m).filter((k) => !["modelsDisk", "llamaServers", "gpu"].includes(k)).sort()).toEqual(
      ["cpu", "disk", "memory", "models", "requests", "timestamp", "uptime"],
    );
    expect(m.models).toEqual({ active: 1, total: 0, memoryUsage: 400 });
    expect(m.requests).toMatchObject({ total: 2, active: 0, errorRate: 0.5 });
    expect(m.llamaServers?.map((x) => x.modelId)).toEqual(["tiny"]);
    expect(m.cpu.usage).toBeGreaterThanOrEqual(0);
    expect(m.cpu.usage).toBeLessThanOrEqual(100);

    // The next read computes generation speed from the counters' deltas.
    predicted += 50;
    predictedSeconds += 0.5;
    const m2 = await s.collector.sampleNow();
    expect(m2.llamaServers?.[0]?.predictedTokensPerSecond).toBe(100);
  });

  // This machine has no GPU; on one with nvidia-smi the GPU tests in gpu.test.ts cover the rest.
  test.skipIf(Bun.which("nvidia-smi") !== null)("no nvidia-smi on this machine: gpu omitted, one warning however many samples", async () => {
    make();
    for (let i = 0; i < 3; i++) expect(await s.collector.sampleNow()).not.toHaveProperty("gpu");
    const warnings = s.logs.query({ level: "warn", q: "nvidia-smi" });
    expect(warnings).toHaveLength(1);
  });

  test("a hung nvidia-smi does not hold the sample", async () => {
    dir = mkdtempSync(join(tmpdir(), "lap-collector-"));
    s = createServices({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" });
    const { MetricsCollector } = await import("../../src/metrics/collector");
    let release!: () => void;
    const hung = new Promise<unknown>((r) => (release = () => r({ nvidia_smi_log: {} })));
    const collector = new MetricsCollector({
      bus: s.bus, log: s.log, config: s.config, registry: s.registry, requests: s.requests, cpu: s.cpu,
      supervisor: s.supervisor, dataDir: dir, startedAt: s.startedAt, history: s.collector.history,
      gpu: new GpuReader({ run: () => hung, timeoutMs: 60_000 }), gpuWaitMs: 100,
    });
    const t0 = performance.now();
    const m = await collector.sampleNow();
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(m.memory.total).toBeGreaterThan(0);
    expect(m).not.toHaveProperty("gpu");
    release();
    await collector.stop();
  });

  test("start-up does not wait for nvidia-smi: the first sample goes out without gpu, the next follows its first reading", async () => {
    make();
    const { MetricsCollector } = await import("../../src/metrics/collector");
    let release!: () => void;
    const reading = { nvidia_smi_log: { gpu: { minor_number: "0", product_name: "Test GPU", fb_memory_usage: { total: "1000 MiB", used: "250 MiB", free: "750 MiB" }, utilization: { gpu_util: "7 %" } } } };
    const slow = new Promise<unknown>((r) => (release = () => r(reading)));
    const collector = new MetricsCollector({
      bus: s.bus, log: s.log, config: s.config, registry: s.registry, requests: s.requests, cpu: s.cpu,
      supervisor: s.supervisor, dataDir: dir, startedAt: s.startedAt, history: s.collector.history,
      // Later samples would wait up to a minute for it: the first must not.
      gpu: new GpuReader({ run: () => slow, timeoutMs: 60_000 }), gpuWaitMs: 60_000,
    });
    const samples: SystemMetrics[] = [];
    s.bus.on("metrics.sample", (m) => samples.push(m));
    const t0 = performance.now();
    await collector.start();
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(samples).toHaveLength(1);
    expect(samples[0]).not.toHaveProperty("gpu");
    release();
    await waitFor(() => samples.length >= 2, "the sample that follows nvidia-smi's first reading");
    expect(samples[1]!.gpu?.[0]).toMatchObject({ id: 0, name: "Test GPU", utilization: 7, memory: { used: 250, total: 1000 } });
    expect(collector.latest()?.gpu).toHaveLength(1);
    await collector.stop();
  });

  test("completed requests and samples roll up into minute rows; stop flushes the open minute", async () => {
    make();
    await s.collector.sampleNow();
    s.requests.begin("tiny", "/v1/chat/completions").end({ status: 200, completionTokens: 120 });
    s.requests.begin(null, "/v1/chat/completions").end({ status: 404 });
    expect(s.db.select().from(metricsMinute).all()).toHaveLength(0);
    await s.collector.stop();
    const rows = s.db.select().from(metricsMinute).all();
    // The test may straddle a minute boundary: count over all rows.
    expect(rows.reduce((n, r) => n + r.requests, 0)).toBe(2);
    expect(rows.reduce((n, r) => n + r.errors, 0)).toBe(1);
    expect(rows.reduce((n, r) => n + r.completionTokens, 0)).toBe(120);
    expect(rows.reduce((n, r) => n + r.samples, 0)).toBe(1);
  });

  test("the loop samples on the configured interval and follows config.changed", async () => {
    make();
    s.config.update({ ...s.config.get(), metricsIntervalSeconds: 3600 });
    let count = 0;
    s.bus.on("metrics.sample", () => count++);
    await s.collector.start(); // takes the first sample at once
    expect(count).toBe(1);
    expect(s.collector.interval).toBe(3_600_000);
    s.config.update({ ...s.config.get(), metricsIntervalSeconds: 1 });
    expect(s.collector.interval).toBe(1000);
    // With a 1 s interval, two more samples arrive within a few seconds (not in an hour).
    await waitFor(() => count >= 3, "three samples", 8000);
  });
});
