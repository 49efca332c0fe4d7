import { describe, expect, test } from "bun:test";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { EventBus } from "../../src/events";
import { RequestStats } from "../../src/proxy/stats";
import { LATENCY_BUCKETS, LatencyHistogram, NO_MODEL, renderPrometheus } from "../../src/metrics/prometheus";
import type { SystemMetrics } from "../../src/metrics/types";
import type { ModelRuntimeInfo } from "../../src/supervisor/types";

const sample: SystemMetrics = {
  timestamp: "2026-01-01T00:00:00.000Z",
  cpu: { usage: 12.5, cores: 8, loadAverage: [1.5, 1.25, 1] },
  memory: { used: 1024, total: 4096, free: 3072, usagePercent: 25 },
  disk: { used: 1000, total: 4000, free: 3000, usagePercent: 25 },
  gpu: [{ id: 0, name: 'NVIDIA "H200"', memory: { used: 21491, total: 143771, free: 121666, usagePercent: 14.9 }, utilization: 100, temperature: 62 }],
  models: { active: 1, total: 2, memoryUsage: 512 },
  requests: { total: 3, active: 1, averageResponseTime: 200, errorRate: 0.33 },
  uptime: 42,
  llamaServers: [{ modelId: "tiny", promptTokensPerSecond: 812.3, predictedTokensPerSecond: 95.5, requestsProcessing: 1, requestsDeferred: 0, promptTokensTotal: 30, predictedTokensTotal: 12, at: "2026-01-01T00:00:00.000Z" }],
};

function runtime(modelId: string, state: ModelRuntimeInfo["state"], memoryUsage?: number): ModelRuntimeInfo {
  return { modelId, state, status: state === "running" ? "running" : "stopped", restarts: 0, ...(memoryUsage !== undefined ? { memoryUsage } : {}) };
}

function build() {
  const stats = new RequestStats(new EventBus());
  const latency = new LatencyHistogram();
  const done = (model: string | null, status: number, seconds: number, tokens?: number) => {
    stats.begin(model, "/v1/chat/completions").end({ status, completionTokens: tokens, promptTokens: tokens ? 5 : undefined });
    latency.observe(model, seconds);
  };
  done("tiny", 200, 0.02, 10);
  done("tiny", 500, 0.7);
  done(null, 404, 0.001);
  stats.begin("tiny", "/v1/chat/completions"); // still in flight
  return renderPrometheus({
    version: "0.1.0",
    sample,
    requests: stats.snapshot(),
    latency,
    runtimes: [runtime("tiny", "running", 512), runtime('we"ird\\name', "stopped")],
    registeredModels: 2,
    llamaServers: sample.llamaServers!,
  });
}

const family = (parsed: ReturnType<typeof parsePrometheusTextFormat>, name: string) => {
  const f = parsed.find((m) => m.name === name);
  if (!f) throw new Error(`no ${name} in output`);
  return f;
};
const value = (parsed: ReturnType<typeof parsePrometheusTextFormat>, name: string, labels: Record<string, string> = {}) =>
  Number(family(parsed, name).metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value);

describe("Prometheus exposition", () => {
  test("parses with a real Prometheus parser, every family typed and documented", () => {
    const text = build();
    const parsed = parsePrometheusTextFormat(text);
    expect(parsed.length).toBeGreaterThan(20);
    for (const f of parsed) {
      expect(f.help.length).toBeGreaterThan(0);
      expect(["COUNTER", "GAUGE", "HISTOGRAM"]).toContain(f.type);
    }
    // Names are unique families (each declared once, samples contiguous).
    const declared = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
    expect(new Set(declared).size).toBe(declared.length);
  });

  test("request counters and latency histogram", () => {
    const text = build();
    const parsed = parsePrometheusTextFormat(text);
    expect(family(parsed, "llamaproxy_requests_total").type).toBe("COUNTER");
    expect(value(parsed, "llamaproxy_requests_total", { model: "tiny" })).toBe(2);
    expect(value(parsed, "llamaproxy_requests_total", { model: NO_MODEL })).toBe(1);
    expect(value(parsed, "llamaproxy_request_errors_total", { model: "tiny" })).toBe(1);
    expect(value(parsed, "llamaproxy_request_errors_total", { model: NO_MODEL })).toBe(1);
    expect(value(parsed, "llamaproxy_requests_active", { model: "tiny" })).toBe(1);
    expect(value(parsed, "llamaproxy_completion_tokens_total", { model: "tiny" })).toBe(10);

    expect(family(parsed, "llamaproxy_request_duration_seconds").type).toBe("HISTOGRAM");
    // This parser folds only unlabelled histograms into buckets/count/sum (prom2json style), so
    // read the "tiny" series on its own with the model label taken off.
    const name = "llamaproxy_request_duration_seconds";
    const tinyOnly = text
      .split("\n")
      .filter((l) => l.startsWith(`# HELP ${name} `) || l.startsWith(`# TYPE ${name} `) || (l.startsWith(name) && l.includes('model="tiny"')))
      .map((l) => l.replace('{model="tiny",', "{").replace('{model="tiny"}', ""))
      .join("\n");
    const [h] = parsePrometheusTextFormat(tinyOnly + "\n");
    const tiny = h!.metrics[0]!;
    expect(Number(tiny.count)).toBe(2);
    expect(Number(tiny.sum)).toBeCloseTo(0.72, 6);
    expect(Object.keys(tiny.buckets!)).toHaveLength(LATENCY_BUCKETS.length + 1);
    expect(Number(tiny.buckets!["0.025"])).toBe(1);
    expect(Number(tiny.buckets!["0.5"])).toBe(1);
    expect(Number(tiny.buckets!["1"])).toBe(2);
    expect(Number(tiny.buckets!["+Inf"])).toBe(2);
  });

  test("model states, memory and llama-server throughput; odd model names are escaped", () => {
    const parsed = parsePrometheusTextFormat(build());
    expect(value(parsed, "llamaproxy_model_state", { model: "tiny", state: "running" })).toBe(1);
    expect(value(parsed, "llamaproxy_model_state", { model: "tiny", state: "stopped" })).toBe(0);
    expect(value(parsed, "llamaproxy_model_state", { model: 'we"ird\\name', state: "stopped" })).toBe(1);
    expect(value(parsed, "llamaproxy_model_memory_bytes", { model: "tiny" })).toBe(512 * 1024 * 1024);
    expect(value(parsed, "llamaproxy_model_predicted_tokens_per_second", { model: "tiny" })).toBe(95.5);
    expect(value(parsed, "llamaproxy_model_prompt_tokens_per_second", { model: "tiny" })).toBe(812.3);
    expect(value(parsed, "llamaproxy_models_registered")).toBe(2);
  });

  test("system and GPU gauges", () => {
    const parsed = parsePrometheusTextFormat(build());
    expect(value(parsed, "llamaproxy_cpu_usage_percent")).toBe(12.5);
    expect(value(parsed, "llamaproxy_load_average", { period: "5m" })).toBe(1.25);
    expect(value(parsed, "llamaproxy_memory_used_bytes")).toBe(1024 * 1024 * 1024);
    expect(value(parsed, "llamaproxy_disk_free_bytes", { volume: "data" })).toBe(3000);
    expect(value(parsed, "llamaproxy_gpu_utilization_percent", { gpu: "0", name: 'NVIDIA "H200"' })).toBe(100);
    expect(value(parsed, "llamaproxy_gpu_memory_used_bytes", { gpu: "0" })).toBe(21491 * 1024 * 1024);
    expect(value(parsed, "llamaproxy_gpu_temperature_celsius", { gpu: "0" })).toBe(62);
    expect(value(parsed, "llamaproxy_uptime_seconds")).toBe(42);
  });

  test("without a GPU there are no GPU families", () => {
    const { gpu, ...noGpu } = sample;
    const text = renderPrometheus({ version: "x", sample: noGpu, requests: new RequestStats().snapshot(), latency: new LatencyHistogram(), runtimes: [], registeredModels: 0, llamaServers: [] });
    const parsed = parsePrometheusTextFormat(text);
    expect(parsed.some((f) => f.name.startsWith("llamaproxy_gpu_"))).toBe(false);
    expect(value(parsed, "llamaproxy_requests_total", { model: NO_MODEL })).toBe(0);
  });
});
