import { rangeField, wholeNumberField, z } from "../zod";
import { peersSchema, rpcWorkersSchema } from "../peers/schema";

const requiredString = (label: string) =>
  z.string({ error: (iss) => (iss.input === undefined ? `${label} is required` : `${label} must be a string`) });

/** Hostname, IPv4 or IPv6 literal (no scheme, no port, no spaces). */
const HOST_RE = /^(\[?[0-9a-fA-F:.]+\]?|[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*)$/;

/** The eight fields of the seed API's LlamaServerConfig: all required on POST /api/config. */
export const referenceConfigShape = {
  host: requiredString("Host").check(z.trim(), z.minLength(1, "Host must not be empty"), z.regex(HOST_RE, "Host must be a hostname or an IP address (no scheme or port)")),
  port: rangeField("Port", 1, 65535),
  basePath: requiredString("basePath").check(z.refine((v) => !v.includes("\u0000"), "basePath must not contain NUL")),
  serverPath: requiredString("serverPath").check(
    z.trim(),
    z.minLength(1, "serverPath must not be empty"),
    z.refine((v) => !v.includes("\u0000"), "serverPath must not contain NUL"),
  ),
  ctx_size: rangeField("ctx_size", 0, 4_194_304),
  batch_size: rangeField("batch_size", 1, 1_048_576),
  threads: wholeNumberField("threads").check(z.refine((n) => n === -1 || (n >= 1 && n <= 1024), "threads must be -1 (auto) or between 1 and 1024")),
  gpu_layers: wholeNumberField("gpu_layers").check(z.refine((n) => n === -1 || (n >= 0 && n <= 100_000), "gpu_layers must be -1 (all) or between 0 and 100000")),
};

/** Settings beyond the seed API (proxy behaviour). Optional on input; defaults apply. */
export const extraConfigShape = {
  /** How many models may run at once (an extra cap beside memory); 0 = as many as memory allows. */
  maxLoadedModels: rangeField("maxLoadedModels", 0, 64),
  /** Memory kept free on every device (GPU and host) when planning where models go, MiB. */
  memoryMarginMiB: rangeField("memoryMarginMiB", 0, 1_048_576),
  /** The most our models may use on any one device (host RAM, each GPU), MiB; 0 = no cap. */
  memoryLimitMiB: rangeField("memoryLimitMiB", 0, 1_073_741_824),
  /** Stop a model after this many seconds without requests; 0 = never. Per-model settings override. */
  idleTimeoutSeconds: rangeField("idleTimeoutSeconds", 0, 30 * 24 * 3600),
  /** Give up on a model load after this many seconds. */
  loadTimeoutSeconds: rangeField("loadTimeoutSeconds", 1, 3600),
  /** SIGTERM grace period before SIGKILL, in seconds. */
  stopTimeoutSeconds: rangeField("stopTimeoutSeconds", 0, 600),
  /** Crash restarts in a row before giving up (0 = never restart). */
  maxRestarts: rangeField("maxRestarts", 0, 100),
  /** First restart delay (ms); doubles per attempt up to restartMaxDelayMs. */
  restartDelayMs: rangeField("restartDelayMs", 0, 600_000),
  restartMaxDelayMs: rangeField("restartMaxDelayMs", 0, 3_600_000),
  /** Requests in flight per model before new ones queue. */
  maxConcurrentRequests: rangeField("maxConcurrentRequests", 1, 10_000),
  /** Requests waiting per model (for a load or a free slot) before 429. At least 1: the request
   *  that triggers an on-demand load waits in this queue too. */
  maxQueuedRequests: rangeField("maxQueuedRequests", 1, 100_000),
  /** Metrics sample interval, seconds. */
  metricsIntervalSeconds: rangeField("metricsIntervalSeconds", 1, 3600),
  /** How long minute rows of metric history are kept, hours. */
  historyRetentionHours: rangeField("historyRetentionHours", 168, 24 * 366),
  /** Disk for saved KV caches (slots saved when a model stops, restored when it returns), MiB; 0 = off. */
  kvCacheDiskMiB: rangeField("kvCacheDiskMiB", 0, 16 * 1024 * 1024),
  /** Only slots holding at least this many tokens are saved (shorter prompts are cheap to redo). */
  kvCacheMinTokens: rangeField("kvCacheMinTokens", 1, 16_777_216),
  /** Activity log rows older than this are deleted (src/activity/log.ts). */
  activityRetentionDays: rangeField("activityRetentionDays", 1, 3650),
  /** At most this many activity rows are kept; the oldest go first. */
  activityMaxRows: rangeField("activityMaxRows", 1000, 10_000_000),
  /** Request headers whose first non-empty value is the activity row's session id, comma separated ("" = none). */
  activitySessionHeaders: z
    .string({ error: "activitySessionHeaders must be a string (comma-separated header names)" })
    .check(
      z.maxLength(500, "activitySessionHeaders must be at most 500 characters"),
      z.regex(/^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+\s*(,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*)*)?$/, "activitySessionHeaders must be header names separated by commas"),
    ),
  /** Memory for request/response body captures, MB; 0 = captures off. */
  captureMaxMB: rangeField("captureMaxMB", 0, 1024),
};

/**
 * Other hosts (src/peers/): list-valued, so they are edited as JSON (config file, POST /api/config),
 * not as fields of the console's settings form. Absent on POST keeps the current lists.
 */
export const clusterConfigShape = {
  /** Other instances / OpenAI-compatible servers that /v1 requests are routed to by model. */
  peers: peersSchema,
  /** Hosts running `llama-async-proxy worker` (llama.cpp rpc-server) that models can be split over. */
  rpcWorkers: rpcWorkersSchema,
};

export const llamaServerConfigSchema = z.strictObject({ ...referenceConfigShape, ...extraConfigShape, ...clusterConfigShape });

/** The single source of the LlamaServerConfig type. */
export type LlamaServerConfig = z.infer<typeof llamaServerConfigSchema>;

/** POST /api/config body: the seed API's fields required, our extras optional (kept when absent). */
export const configUpdateSchema = z.strictObject({
  ...referenceConfigShape,
  ...(Object.fromEntries(Object.entries(extraConfigShape).map(([k, v]) => [k, z.optional(v)])) as {
    [K in keyof typeof extraConfigShape]: z.ZodMiniOptional<(typeof extraConfigShape)[K]>;
  }),
  peers: z.optional(clusterConfigShape.peers),
  rpcWorkers: z.optional(clusterConfigShape.rpcWorkers),
});
export type ConfigUpdate = z.infer<typeof configUpdateSchema>;

export const EXTRA_DEFAULTS = {
  maxLoadedModels: 1,
  memoryMarginMiB: 1024,
  memoryLimitMiB: 0,
  idleTimeoutSeconds: 0,
  loadTimeoutSeconds: 120,
  stopTimeoutSeconds: 10,
  maxRestarts: 5,
  restartDelayMs: 1000,
  restartMaxDelayMs: 60_000,
  maxConcurrentRequests: 16,
  maxQueuedRequests: 64,
  metricsIntervalSeconds: 10,
  historyRetentionHours: 168,
  kvCacheDiskMiB: 8192,
  kvCacheMinTokens: 1024,
  activityRetentionDays: 30,
  activityMaxRows: 100_000,
  activitySessionHeaders: "X-Session-ID",
  captureMaxMB: 0,
  peers: [],
  rpcWorkers: [],
} satisfies Pick<LlamaServerConfig, keyof typeof extraConfigShape | keyof typeof clusterConfigShape>;
