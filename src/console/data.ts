// What the console pages show, built from the services (no HTTP here, so tests drive it directly).
import { buildStatus } from "../api/status";
import type { PeerSnapshot } from "../peers/registry";
import type { RpcWorkerSnapshot } from "../rpc/workers";
import type { LlamaServerConfig } from "../config/schema";
import type { FormValues } from "./forms";
import type { KvCacheEntryView } from "../kvcache/service";
import type { LogQuery } from "../logs/buffer";
import type { LogEntry } from "../logs/types";
import { readDisk, readMemory } from "../metrics/system";
import type { SystemMetrics } from "../metrics/types";
import type { Model } from "../models/types";
import { listModels } from "../models/view";
import type { Services } from "../services";
import { checkServerBinary } from "../supervisor/binary";
import type { LiveRequest } from "../activity/tracker";
import type { RecentPoint } from "./recent";

/** A model as the console shows it: the API's Model plus load progress. */
export interface ModelView extends Model {
  /** ISO time the current load started (status "loading"). */
  loadingSince?: string;
  /** What the load is doing now, read from the model's own log lines. */
  stage?: string;
  /** Saved KV caches of this model (most recently used first), as GET /api/models/:id/kv-cache shows them. */
  kvCaches?: Pick<KvCacheEntryView, "id" | "tokens" | "sizeBytes" | "createdAt" | "hits">[];
  /** Its requests in the live queue (GET /api/requests?model=), by state. */
  queue?: ModelQueue;
}

/** How many of a model's requests are waiting for it and how many it is answering. */
export interface ModelQueue {
  queued: number;
  running: number;
}

/** Every model's live requests by state, from the tracker's one list (models with none left out). */
export function queueByModel(requests: Pick<LiveRequest, "model" | "state">[]): Record<string, ModelQueue> {
  const out: Record<string, ModelQueue> = {};
  for (const r of requests) {
    const q = (out[r.model] ??= { queued: 0, running: 0 });
    // A request waiting for its model to load is waiting, as one waiting for a free slot.
    if (r.state === "running") q.running++;
    else q.queued++;
  }
  return out;
}

/** Log source of one model's llama-server lines (the supervisor's convention). */
export const modelLogSource = (modelId: string) => `llama-server:${modelId}`;

// llama-server prints these while it starts; the newest one that matched tells the stage.
const STAGES: [RegExp, string][] = [
  // Not "HTTP server is listening": llama-server prints that early, before it loads anything.
  [/server is listening on|starting the main loop|all slots are idle/i, "ready, waiting for health check"],
  [/model loaded|main: model loaded/i, "model loaded"],
  [/warming up|warmup/i, "warming up"],
  [/llama_kv_cache|kv_self|llama_context|init: kv|slot\s+init/i, "allocating context"],
  [/load_tensors|offload(ing|ed) \d+.*layers|tensor/i, "loading tensors"],
  [/llama_model_loader|loading model|llama_model_load|print_info|gguf/i, "reading model metadata"],
  [/build:|system info|main: /i, "starting"],
];

export function stageFromLogs(lines: string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    for (const [re, stage] of STAGES) if (re.test(lines[i]!)) return stage;
  }
  return undefined;
}

export function modelViews(s: Pick<Services, "registry" | "supervisor" | "logs"> & Partial<Pick<Services, "kvcache" | "tracker">>): ModelView[] {
  const queues = s.tracker ? queueByModel(s.tracker.list()) : {};
  return listModels(s).map((model) => {
    const saved = s.kvcache?.store.list(model.id) ?? [];
    let m: ModelView = saved.length
      ? { ...model, kvCaches: saved.map((e) => ({ id: e.id, tokens: e.tokens, sizeBytes: e.bytes, createdAt: new Date(e.createdAt).toISOString(), hits: e.hits })) }
      : model;
    if (queues[m.id]) m = { ...m, queue: queues[m.id] };
    if (m.status !== "loading") return m;
    const rt = s.supervisor.runtimeOf(m.id);
    const lines = s.logs.query({ source: modelLogSource(m.id), limit: 40 }).map((e) => e.message);
    return {
      ...m,
      ...(rt?.loadingSince ? { loadingSince: rt.loadingSince } : {}),
      stage: stageFromLogs(lines) ?? m.statusDetail ?? "starting process",
    };
  });
}

export interface DashboardData {
  status: ReturnType<typeof buildStatus>;
  llamaServer: { found: boolean; path?: string; reason?: string };
  configError: string | null;
  metrics: Pick<SystemMetrics, "cpu" | "memory" | "disk" | "gpu">;
  /** Time of the collector sample shown, or null when read on the spot (collector not running). */
  sampledAt: string | null;
  recent: RecentPoint[];
  requestsPerMinute: number;
  averageResponseTime: number;
  tokensPerSecond: number;
  models: ModelView[];
  /** Configured peers (src/peers/), empty when there are none. */
  peers: PeerSnapshot[];
  /** Configured RPC workers (src/rpc/), empty when there are none. */
  rpcWorkers: RpcWorkerSnapshot[];
}

export function dashboardData(s: Services): DashboardData {
  // The collector is the one holder of the latest sample; the console keeps only sparkline points.
  const latest = s.collector.latest();
  const recent = s.recent;
  const perf = s.requests.snapshot();
  const cfg = s.config.get();
  return {
    status: buildStatus(s),
    llamaServer: checkServerBinary(cfg.serverPath),
    configError: s.config.loadError,
    // The collector's sample when it runs; otherwise read now, so the page is never empty.
    metrics: latest ?? { cpu: s.cpu.sample(), memory: readMemory(), disk: readDisk(s.options.dataDir) },
    sampledAt: latest?.timestamp ?? null,
    recent: recent.list(),
    requestsPerMinute: recent.requestRate(),
    // The collector's figure when it runs (the same one the sparkline draws), else the live counters.
    averageResponseTime: latest?.requests.averageResponseTime ?? perf.averageResponseTime,
    tokensPerSecond: perf.tokensPerSecond,
    models: modelViews(s),
    peers: s.peers.snapshot(),
    rpcWorkers: s.rpcWorkers.snapshot(),
  };
}

// ---- Settings form -------------------------------------------------------------------------

/** The settings form's fields from the saved configuration (the form posts them as strings). */
export function configToForm(cfg: LlamaServerConfig): FormValues {
  return Object.fromEntries(Object.entries(cfg).map(([k, v]) => [k, String(v)]));
}

// ---- Logs ----------------------------------------------------------------------------------

/** The log view's filter: the part of the log buffer's own query the page offers. */
export type LogFilter = Pick<LogQuery, "level" | "source" | "q">;

export function logsAsText(entries: LogEntry[]): string {
  return entries.map((e) => `${e.timestamp} ${e.level.toUpperCase().padEnd(5)} [${e.source}] ${e.message}`).join("\n") + (entries.length ? "\n" : "");
}
