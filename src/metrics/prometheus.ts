import type { RequestStatsSnapshot } from "../proxy/stats";
import type { ModelRuntimeInfo, ProcessState } from "../supervisor/types";
import type { LlamaServerMetrics } from "./llama-metrics";
import type { SystemMetrics } from "./types";
import type { KvCacheCounters } from "../kvcache/service";

/** Upper bounds (seconds) of the request latency histogram: from a cached token to a long generation. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** Label value for requests that named no known model (404s, /v1/models). */
export const NO_MODEL = "none";

interface Hist { counts: number[]; sum: number; count: number }

/** Cumulative request-latency histogram per model, as Prometheus expects it (never reset). */
export class LatencyHistogram {
  private byModel = new Map<string, Hist>();

  observe(modelId: string | null, seconds: number): void {
    const key = modelId ?? NO_MODEL;
    let h = this.byModel.get(key);
    if (!h) this.byModel.set(key, (h = { counts: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]!) h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  entries(): Array<[string, Readonly<Hist>]> {
    return [...this.byModel].sort(([a], [b]) => a.localeCompare(b));
  }
}

export interface PrometheusInput {
  version: string;
  sample: SystemMetrics | null;
  requests: RequestStatsSnapshot;
  latency: LatencyHistogram;
  runtimes: ModelRuntimeInfo[];
  registeredModels: number;
  llamaServers: LlamaServerMetrics[];
  /** Saved KV caches (src/kvcache): counters since start-up and what is on disk now. */
  kvCache?: { counters: KvCacheCounters; files: number; bytes: number };
  /** Peers (src/peers/): health, latency, models, requests. */
  peers?: import("../peers/registry").PeerSnapshot[];
  /** RPC workers (src/rpc/): health, rpc-server restarts, devices. */
  rpcWorkers?: import("../rpc/workers").RpcWorkerSnapshot[];
}

/** Escapes a label value per the text exposition format (backslash, double quote, newline). */
export const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

const fmt = (n: number) => (Number.isNaN(n) ? "NaN" : n === Infinity ? "+Inf" : n === -Infinity ? "-Inf" : String(n));
const MB = 1024 * 1024;
const STATES: ProcessState[] = ["stopped", "loading", "running", "stopping", "error"];

/**
 * Builds the text exposition (version 0.0.4) one family at a time: HELP and TYPE once, then its
 * samples, so every family is contiguous as parsers require.
 */
class Exposition {
  private lines: string[] = [];

  family(name: string, type: "counter" | "gauge" | "histogram", help: string, samples: Array<[Record<string, string>, number]>): void {
    if (!samples.length) return;
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) this.lines.push(`${name}${labelText(labels)} ${fmt(value)}`);
  }

  histogram(name: string, help: string, series: Array<[Record<string, string>, Readonly<Hist>]>): void {
    if (!series.length) return;
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    for (const [labels, h] of series) {
      LATENCY_BUCKETS.forEach((le, i) => this.lines.push(`${name}_bucket${labelText({ ...labels, le: String(le) })} ${h.counts[i]}`));
      this.lines.push(`${name}_bucket${labelText({ ...labels, le: "+Inf" })} ${h.count}`);
      this.lines.push(`${name}_sum${labelText(labels)} ${fmt(h.sum)}`);
      this.lines.push(`${name}_count${labelText(labels)} ${h.count}`);
    }
  }

  toString(): string {
    return this.lines.join("\n") + "\n";
  }
}

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** GET /metrics: our request counters and latencies, model states and throughput, system and GPU gauges. */
export function renderPrometheus(input: PrometheusInput): string {
  const out = new Exposition();
  const { requests, sample } = input;
  const perModel = Object.entries(requests.perModel).sort(([a], [b]) => a.localeCompare(b));
  // Requests that named no model are in the totals but in no per-model entry.
  const rest = <K extends "total" | "errors" | "active" | "promptTokens" | "completionTokens">(key: K, all: number) =>
    all - perModel.reduce((s, [, m]) => s + m[key], 0);
  const byModel = (key: "total" | "errors" | "active" | "promptTokens" | "completionTokens", all: number): Array<[Record<string, string>, number]> => {
    const rows: Array<[Record<string, string>, number]> = perModel.map(([id, m]) => [{ model: id }, m[key]]);
    const other = rest(key, all);
    if (other > 0 || rows.length === 0) rows.push([{ model: NO_MODEL }, other]);
    return rows;
  };

  out.family("llamaproxy_build_info", "gauge", "Version of the proxy (always 1).", [[{ version: input.version }, 1]]);
  if (sample) out.family("llamaproxy_uptime_seconds", "gauge", "Seconds since the proxy started.", [[{}, sample.uptime]]);

  out.family("llamaproxy_requests_total", "counter", "Proxied requests finished, by model.", byModel("total", requests.total));
  out.family("llamaproxy_request_errors_total", "counter", "Proxied requests that ended in an error, by model.", byModel("errors", requests.errors));
  out.family("llamaproxy_requests_active", "gauge", "Proxied requests in flight, by model.", byModel("active", requests.active));
  out.family("llamaproxy_prompt_tokens_total", "counter", "Prompt tokens reported by finished requests.", byModel("promptTokens", requests.promptTokens));
  out.family("llamaproxy_completion_tokens_total", "counter", "Completion tokens reported by finished requests.", byModel("completionTokens", requests.completionTokens));
  out.histogram(
    "llamaproxy_request_duration_seconds",
    "Time from receiving a proxied request to its last byte, by model.",
    input.latency.entries().map(([model, h]) => [{ model }, h]),
  );

  out.family("llamaproxy_models_registered", "gauge", "Models in the registry.", [[{}, input.registeredModels]]);
  const runtimes = [...input.runtimes].sort((a, b) => a.modelId.localeCompare(b.modelId));
  out.family(
    "llamaproxy_model_state",
    "gauge",
    "1 for the state each model's llama-server is in, 0 for the others.",
    runtimes.flatMap((r) => STATES.map((st): [Record<string, string>, number] => [{ model: r.modelId, state: st }, r.state === st ? 1 : 0])),
  );
  out.family(
    "llamaproxy_model_memory_bytes",
    "gauge",
    "Memory held by each model's llama-server (RSS plus GPU memory).",
    runtimes.filter((r) => r.memoryUsage !== undefined).map((r) => [{ model: r.modelId }, Math.round(r.memoryUsage! * MB)]),
  );
  out.family("llamaproxy_model_restarts", "gauge", "Crash restarts in a row of each model's llama-server.", runtimes.map((r) => [{ model: r.modelId }, r.restarts]));
  const ls = [...input.llamaServers].sort((a, b) => a.modelId.localeCompare(b.modelId));
  out.family("llamaproxy_model_prompt_tokens_per_second", "gauge", "Prompt processing throughput read from the model's llama-server.", ls.map((m) => [{ model: m.modelId }, m.promptTokensPerSecond]));
  out.family("llamaproxy_model_predicted_tokens_per_second", "gauge", "Generation throughput read from the model's llama-server.", ls.map((m) => [{ model: m.modelId }, m.predictedTokensPerSecond]));
  out.family("llamaproxy_model_requests_processing", "gauge", "Requests the model's llama-server is processing.", ls.map((m) => [{ model: m.modelId }, m.requestsProcessing]));
  out.family("llamaproxy_model_requests_deferred", "gauge", "Requests the model's llama-server has deferred.", ls.map((m) => [{ model: m.modelId }, m.requestsDeferred]));

  if (input.kvCache) {
    const k = input.kvCache;
    const c = k.counters;
    out.family("llamaproxy_kv_cache_saves_total", "counter", "Slots saved before a model stopped.", [[{}, c.saves]]);
    out.family("llamaproxy_kv_cache_save_failures_total", "counter", "Slot saves that failed or ran out of time.", [[{}, c.saveFailures]]);
    out.family("llamaproxy_kv_cache_restores_total", "counter", "Saved caches restored into a slot before forwarding.", [[{}, c.restores]]);
    out.family("llamaproxy_kv_cache_restore_failures_total", "counter", "Restores refused by llama-server or failed.", [[{}, c.restoreFailures]]);
    out.family("llamaproxy_kv_cache_hits_total", "counter", "Restores whose answer reused the prefix (timings.cache_n).", [[{}, c.hits]]);
    out.family("llamaproxy_kv_cache_misses_total", "counter", "Restores the model ignored (the file was dropped).", [[{}, c.misses]]);
    out.family("llamaproxy_kv_cache_evictions_total", "counter", "Saved caches deleted to stay within kvCacheDiskMiB.", [[{}, c.evictions]]);
    out.family("llamaproxy_kv_cache_saved_bytes_total", "counter", "Bytes written by slot saves.", [[{}, c.bytesSaved]]);
    out.family("llamaproxy_kv_cache_restored_bytes_total", "counter", "Bytes read by slot restores.", [[{}, c.bytesRestored]]);
    out.family("llamaproxy_kv_cache_files", "gauge", "Saved KV cache files on disk.", [[{}, k.files]]);
    out.family("llamaproxy_kv_cache_bytes", "gauge", "Bytes of saved KV cache files on disk.", [[{}, k.bytes]]);
  }
  const peers = [...(input.peers ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  out.family("llamaproxy_peer_up", "gauge", "1 when the peer answered its last health check and is not backing off.", peers.map((p) => [{ peer: p.name }, p.state === "up" && !p.backoffUntil ? 1 : 0]));
  out.family("llamaproxy_peer_latency_seconds", "gauge", "Duration of the peer's last successful health check (GET /v1/models).", peers.filter((p) => p.latencyMs !== undefined).map((p) => [{ peer: p.name }, p.latencyMs! / 1000]));
  out.family("llamaproxy_peer_models", "gauge", "Models the peer serves (after its models globs).", peers.map((p) => [{ peer: p.name }, p.models.length]));
  out.family("llamaproxy_peer_requests_active", "gauge", "Requests in flight to the peer.", peers.map((p) => [{ peer: p.name }, p.inFlight]));
  out.family("llamaproxy_peer_requests_total", "counter", "Requests relayed to the peer.", peers.map((p) => [{ peer: p.name }, p.requestsTotal]));
  out.family("llamaproxy_peer_request_errors_total", "counter", "Requests relayed to the peer that failed.", peers.map((p) => [{ peer: p.name }, p.requestErrors]));
  out.family("llamaproxy_peer_failures", "gauge", "Failures in a row (checks and requests) of the peer.", peers.map((p) => [{ peer: p.name }, p.failures]));

  const workers = [...(input.rpcWorkers ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  out.family("llamaproxy_rpc_worker_up", "gauge", "1 when the RPC worker answers and its rpc-server runs.", workers.map((w) => [{ worker: w.name }, w.state === "up" && w.rpcState === "running" ? 1 : 0]));
  out.family("llamaproxy_rpc_worker_restarts", "gauge", "rpc-server restarts the worker reports.", workers.filter((w) => w.restarts !== undefined).map((w) => [{ worker: w.name }, w.restarts!]));
  out.family("llamaproxy_rpc_worker_device_memory_bytes", "gauge", "Memory of each device an RPC worker exposes.", workers.flatMap((w) => w.devices.map((d): [Record<string, string>, number] => [{ worker: w.name, device: d.name }, d.totalMiB * MB])));

  if (sample) {
    out.family("llamaproxy_cpu_usage_percent", "gauge", "Machine CPU busy share since the previous sample.", [[{}, sample.cpu.usage]]);
    out.family("llamaproxy_cpu_cores", "gauge", "Logical CPU cores.", [[{}, sample.cpu.cores]]);
    out.family("llamaproxy_load_average", "gauge", "System load average.", [
      [{ period: "1m" }, sample.cpu.loadAverage[0]],
      [{ period: "5m" }, sample.cpu.loadAverage[1]],
      [{ period: "15m" }, sample.cpu.loadAverage[2]],
    ]);
    out.family("llamaproxy_memory_used_bytes", "gauge", "Machine memory in use (excluding reclaimable cache).", [[{}, sample.memory.used * MB]]);
    out.family("llamaproxy_memory_total_bytes", "gauge", "Machine memory.", [[{}, sample.memory.total * MB]]);
    out.family("llamaproxy_memory_usage_percent", "gauge", "Machine memory in use, percent.", [[{}, sample.memory.usagePercent]]);
    const disks: Array<[string, typeof sample.disk]> = [["data", sample.disk], ...(sample.modelsDisk ? [["models", sample.modelsDisk] as [string, typeof sample.disk]] : [])];
    out.family("llamaproxy_disk_used_bytes", "gauge", "Bytes used on the filesystem.", disks.map(([v, d]) => [{ volume: v }, d.used]));
    out.family("llamaproxy_disk_total_bytes", "gauge", "Size of the filesystem.", disks.map(([v, d]) => [{ volume: v }, d.total]));
    out.family("llamaproxy_disk_free_bytes", "gauge", "Bytes available to us on the filesystem.", disks.map(([v, d]) => [{ volume: v }, d.free]));
    const gpus = sample.gpu ?? [];
    const gl = (g: (typeof gpus)[number]) => ({ gpu: String(g.id), name: g.name });
    out.family("llamaproxy_gpu_utilization_percent", "gauge", "GPU utilization.", gpus.map((g) => [gl(g), g.utilization]));
    out.family("llamaproxy_gpu_memory_used_bytes", "gauge", "GPU framebuffer memory in use.", gpus.map((g) => [gl(g), g.memory.used * MB]));
    out.family("llamaproxy_gpu_memory_total_bytes", "gauge", "GPU framebuffer memory.", gpus.map((g) => [gl(g), g.memory.total * MB]));
    out.family(
      "llamaproxy_gpu_temperature_celsius",
      "gauge",
      "GPU core temperature.",
      gpus.filter((g) => g.temperature !== undefined).map((g) => [gl(g), g.temperature!]),
    );
  }
  return out.toString();
}
