import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Per-model settings beyond the seed API (overrides of the global llama-server config). */
export interface ModelSettings {
  ctxSize?: number;
  batchSize?: number;
  threads?: number;
  gpuLayers?: number;
  /** Extra llama-server arguments, one array element per argv entry (never a shell string). */
  extraArgs?: string[];
  /** Other names the proxy accepts for this model in a request's `model` field. */
  aliases?: string[];
  /** Start this model when the proxy starts. */
  autoStart?: boolean;
  /** Stop after this many idle seconds (0 = never; absent = global default). */
  idleTimeoutSeconds?: number;
  /** false: never save or restore this model's KV cache across stops (absent = on). */
  kvCache?: boolean;
  /** Never stopped to make room for another model. */
  pinned?: boolean;
  /** May start with some layers on the CPU (llama-server's --fit) when the GPUs are short of memory. */
  allowPartialOffload?: boolean;
  /** Request rewriting for this model (src/proxy/rewrite.ts). */
  rewrite?: RewriteRules;
  /** RPC workers (rpcWorkers names, or "all") the model is split over: llama-server --rpc. */
  rpc?: string[] | "all";
  /** llama-server --tensor-split proportions (local devices first, then each RPC worker's). */
  tensorSplit?: number[];
}

/** Per-model request body rewriting, applied by the proxy before forwarding. */
export interface RewriteRules {
  /** Set when the client did not send the parameter. */
  defaults?: Record<string, unknown>;
  /** Always set, replacing what the client sent. */
  overrides?: Record<string, unknown>;
  /** Removed from the request. */
  strip?: string[];
}

/** The model registry: registered models and those found by discovery. */
export const models = sqliteTable("models", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  description: text("description"),
  version: text("version"),
  path: text("path").notNull().unique(),
  /** Bytes; for split models the sum of all shards. */
  size: integer("size").notNull().default(0),
  family: text("family").notNull().default("unknown"),
  format: text("format"),
  quantization: text("quantization"),
  contextSize: integer("context_size"),
  /** Multimodal projector found beside the model (passed as --mmproj). */
  mmprojPath: text("mmproj_path"),
  /** "registered" by a user, or "discovered" by a scan (shown with status "discovered"). */
  source: text("source", { enum: ["registered", "discovered"] }).notNull().default("registered"),
  /** The file was not found by the latest scan. */
  missing: integer("missing", { mode: "boolean" }).notNull().default(false),
  settings: text("settings", { mode: "json" }).$type<ModelSettings>().notNull().default(sql`'{}'`),
  /** ISO time of the last proxied request. */
  lastUsed: text("last_used"),
  createdAt: text("created_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`),
  updatedAt: text("updated_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`),
});

export type ModelRow = typeof models.$inferSelect;
export type NewModelRow = typeof models.$inferInsert;

/**
 * One row per minute of metric history (averages and maxima of the samples taken in it).
 * Coarser resolutions are SQL bucket queries over these rows; a minute with no row is a gap.
 */
export const metricsMinute = sqliteTable(
  "metrics_minute",
  {
    /** Start of the minute, Unix epoch milliseconds. */
    ts: integer("ts").primaryKey(),
    samples: integer("samples").notNull(),
    cpuAvg: real("cpu_avg").notNull(),
    cpuMax: real("cpu_max").notNull(),
    memAvg: real("mem_avg").notNull(),
    memMax: real("mem_max").notNull(),
    /** GPU utilization %, null when no GPU was seen. */
    gpuUtilAvg: real("gpu_util_avg"),
    gpuUtilMax: real("gpu_util_max"),
    /** GPU memory used %, null when no GPU was seen. */
    gpuMemAvg: real("gpu_mem_avg"),
    gpuMemMax: real("gpu_mem_max"),
    /** Proxied requests completed in this minute. */
    requests: integer("requests").notNull().default(0),
    errors: integer("errors").notNull().default(0),
    /** Mean response time of those requests (ms), null when there were none. */
    responseTimeAvg: real("response_time_avg"),
    /** Generated tokens per second across all models. */
    tokensPerSecond: real("tokens_per_second"),
    promptTokens: integer("prompt_tokens").notNull().default(0),
    completionTokens: integer("completion_tokens").notNull().default(0),
  },
);

export type MetricsMinuteRow = typeof metricsMinute.$inferSelect;

/**
 * What llama-server reported it used for a model with given settings (its memory report), the
 * latest one per model and settings key (src/memory/settings.ts settingsKey). Preferred over
 * the GGUF estimate when planning the next start with the same settings.
 */
export const modelMemory = sqliteTable(
  "model_memory",
  {
    modelId: text("model_id").notNull(),
    settingsKey: text("settings_key").notNull(),
    /** Total bytes over every device (model + context + compute). */
    totalBytes: integer("total_bytes").notNull(),
    /** Per device: [{device, kind, modelBytes, contextBytes, computeBytes, totalBytes?, freeBytes?}]. */
    devices: text("devices", { mode: "json" }).$type<MeasuredDevice[]>().notNull(),
    measuredAt: text("measured_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.modelId, t.settingsKey] })],
);

export interface MeasuredDevice {
  /** llama-server's device name ("CUDA0", "Host", "CPU_Mapped"...) */
  device: string;
  kind: "gpu" | "host";
  modelBytes: number;
  contextBytes: number;
  computeBytes: number;
  /** Device total and free memory as llama-server saw them (GPUs only). */
  totalBytes?: number;
  freeBytes?: number;
}

export type ModelMemoryRow = typeof modelMemory.$inferSelect;

/**
 * The activity log: one row per proxied request, written in batches when it has finished
 * (src/activity/log.ts). `seq` orders rows by when they finished and is the paging cursor.
 */
export const activity = sqliteTable(
  "activity",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    /** X-Request-Id (the client's when it sent a valid one): not unique over time. */
    requestId: text("request_id").notNull(),
    /** When the request arrived, Unix epoch milliseconds. */
    ts: integer("ts").notNull(),
    model: text("model"),
    route: text("route").notNull(),
    status: integer("status").notNull(),
    client: text("client"),
    /** Name of the API key used ("admin" for --api-key), null without auth. */
    keyName: text("key_name"),
    sessionId: text("session_id"),
    streaming: integer("streaming", { mode: "boolean" }).notNull().default(false),
    promptTokens: integer("prompt_tokens"),
    cachedTokens: integer("cached_tokens"),
    completionTokens: integer("completion_tokens"),
    /** Waiting for a free slot of a running model, ms. */
    queuedMs: integer("queued_ms"),
    /** Waiting for the model to load, ms. */
    loadingMs: integer("loading_ms"),
    ttftMs: integer("ttft_ms"),
    promptTps: real("prompt_tps"),
    genTps: real("gen_tps"),
    durationMs: integer("duration_ms").notNull(),
    error: text("error"),
    /** Parameters the model's rewrite rules changed (comma separated), null when none. */
    rewritten: text("rewritten"),
  },
  (t) => [index("activity_ts").on(t.ts), index("activity_model_seq").on(t.model, t.seq), index("activity_key_seq").on(t.keyName, t.seq)],
);

export type ActivityRow = typeof activity.$inferSelect;
export type NewActivityRow = typeof activity.$inferInsert;
