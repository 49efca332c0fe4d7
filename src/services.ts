import { join } from "node:path";
import { ActivityLog, type ActivityOptions } from "./activity/log";
import { RequestTracker } from "./activity/tracker";
import { CaptureStore, MIB } from "./activity/captures";
import { ConfigStore } from "./config/store";
import { ConfigReloader } from "./config/reload";
import { KeyLimiter } from "./keys/limiter";
import { closeDatabase, openDatabase, type Db } from "./db/client";
import { EventBus } from "./events";
import { LogBuffer } from "./logs/buffer";
import { Authenticator } from "./http/auth";
import { BodyBudget, DEFAULT_MAX_IN_FLIGHT_BODY_BYTES } from "./http/body-budget";
import { HostAllowList } from "./http/guard";
import { Logger } from "./logs/logger";
import type { LogLevel } from "./logs/types";
import { MetricsCollector } from "./metrics/collector";
import { MetricsHistory } from "./metrics/history";
import { CpuSampler } from "./metrics/system";
import { KvCacheService } from "./kvcache/service";
import { KvCacheStore } from "./kvcache/store";
import { ModelRegistry } from "./models/registry";
import { loadInstanceId } from "./peers/instance";
import { PeerRegistry, type PeerTimings } from "./peers/registry";
import { RpcWorkers, type RpcWorkerTimings } from "./rpc/workers";
import { rpcTargetOf } from "./memory/budget";
import { DEFAULT_PROXY_OPTIONS, type ProxyOptions } from "./proxy/options";
import { RecentMetrics } from "./console/recent";
import { RequestStats } from "./proxy/stats";
import { ModelPool } from "./supervisor/pool";
import { MemoryService } from "./memory/service";
import { RealtimeHub } from "./realtime/hub";
import type { RealtimeOptions } from "./realtime/types";
import type { SupervisorApi } from "./supervisor/types";
import { Supervisor, type SupervisorDeps } from "./supervisor/supervisor";
import type { StartupTimings } from "./startup";
import { APP_VERSION } from "./version";

/** What main.ts learned from flags and environment. */
export interface RuntimeOptions {
  port: number;
  host: string;
  dataDir: string;
  configPath: string;
  logLevel: LogLevel;
  environment: string;
  /** Required on /api and /v1 when set (Authorization: Bearer <key> or X-API-Key). */
  apiKey?: string;
  /** Request bodies read at once, all routes together (default 256 MiB; beyond: 503). */
  maxInFlightBodyBytes?: number;
  /** Seconds before an idle connection is closed (default 60; requests in progress are exempt). */
  idleTimeoutSeconds?: number;
  /** Host names accepted besides loopback and the bound address (--allowed-hosts, ALLOWED_HOSTS). */
  allowedHosts?: string[];
  /** Do not print log lines to stderr (tests). */
  quiet?: boolean;
  /** ":memory:" for tests; default <dataDir>/llama-async-proxy.db */
  databasePath?: string;
  /** Proxy timing knobs (tests shorten them). */
  proxy?: Partial<ProxyOptions>;
  /** /llamaproxws intervals and limits (tests make them small). */
  realtime?: Partial<RealtimeOptions>;
  /** Peer health-check and back-off timings (tests make them small). */
  peers?: Partial<PeerTimings>;
  /** RPC worker check timings (tests make them small). */
  rpcWorkers?: Partial<RpcWorkerTimings>;
  /** Activity log batching (tests flush sooner). */
  activity?: Partial<ActivityOptions>;
  /** Start-up step timings (main.ts passes one; the steps are logged at debug level). */
  startup?: StartupTimings;
  /** Milliseconds after the listen before the routes beyond the core app's are loaded unasked (server.ts; tests make it long). */
  routesLoadDelayMs?: number;
  /** Called once the server answers (listening, first metrics sample in), before the background starts: main.ts prints its banner there. */
  onListening?: (running: import("./server").RunningServer) => void;
}

/**
 * Every long-lived service of the process. Each owns one piece of state; routes, the WebSocket
 * hub and the console only read them and call their methods.
 */
export interface Services {
  options: RuntimeOptions;
  version: string;
  startedAt: Date;
  bus: EventBus;
  logs: LogBuffer;
  log: Logger;
  config: ConfigStore;
  db: Db;
  registry: ModelRegistry;
  cpu: CpuSampler;
  /** Owns every llama-server child process. */
  readonly supervisor: SupervisorApi;
  /**
   * The one owner of model lifecycles (start, stop, restart, requests): plans by memory, evicts,
   * queues, idle TTL. Everything that starts or stops a model goes through it.
   */
  pool: ModelPool;
  /** Saved KV caches: slots saved when a model stops, restored when its conversation returns. */
  kvcache: KvCacheService;
  /** Memory estimates, measured figures and device budgets. */
  memory: MemoryService;
  proxyOptions: ProxyOptions;
  /** Request counters (proxy). */
  requests: RequestStats;
  /** The live request queue (queued, loading, in flight) and cancel. */
  tracker: RequestTracker;
  /** Request/response body captures (off unless captureMaxMB > 0). */
  captures: CaptureStore;
  /** Every finished proxied request, batched into SQLite. */
  activity: ActivityLog;
  /** Per named key: requests/minute and tokens/day limits, counters for /metrics. */
  keyLimiter: KeyLimiter;
  /** Hot reload of the config file (watcher, SIGHUP); started by startServer. */
  reloader: ConfigReloader;
  /** Samples system/GPU/model/request metrics, owns the latest sample and the minute history. */
  collector: MetricsCollector;
  /** The dashboard's sparkline points (the last few samples, derived; the collector holds the latest). */
  recent: RecentMetrics;
  /** The /llamaproxws hub: realtime connections, subscriptions and their statistics. */
  hub: RealtimeHub;
  /** Random id of this instance (per data dir): the loop guard in the Via header of peer requests. */
  instanceId: string;
  /** Other hosts /v1 requests are routed to by model: their health, models and back-off. */
  peers: PeerRegistry;
  /** The RPC workers (rpcWorkers): health, devices, --rpc arguments, models split over them. */
  rpcWorkers: RpcWorkers;
  /** The API key and the console's login sessions: who may call us (src/http/auth.ts). */
  auth: Authenticator;
  /** The global budget of request bodies in flight. */
  bodyBudget: BodyBudget;
  /** Which Host / Origin values the request guard accepts (src/http/guard.ts). */
  hosts: HostAllowList;
  /** Filled in by main.ts once Bun.serve is listening (the actual port when 0 was asked for). */
  server: { port: number; host: string };
}

/**
 * What a caller may build differently from the defaults: the test doubles (a FakeSupervisor, a
 * supervisor with shorter timings) go in here instead of being assigned over a built service.
 */
export interface ServiceOverrides {
  /** Builds the supervisor from the same dependencies the real one gets. */
  supervisor?: (deps: SupervisorDeps) => SupervisorApi;
}

export function createServices(options: RuntimeOptions, overrides: ServiceOverrides = {}): Services {
  const bus = new EventBus();
  const logs = new LogBuffer(5000, bus);
  const log = new Logger(logs, options.logLevel, "proxy", options.quiet ?? false);
  const config = new ConfigStore(options.configPath, log, bus);
  options.startup?.mark("config");
  const db = openDatabase(options.databasePath ?? join(options.dataDir, "llama-async-proxy.db"));
  options.startup?.mark("database + migrations");
  const registry = new ModelRegistry(db, bus);
  options.startup?.mark("registry");
  const kvcache = new KvCacheService({ store: new KvCacheStore(join(options.dataDir, "kv-cache"), log.child("kvcache")), config: () => config.get(), log: log.child("kvcache") });
  const supervisorDeps: SupervisorDeps = {
    registry, config, logs, log, bus, dataDir: options.dataDir,
    hooks: {
      launchArgs: (m, bin) => kvcache.launchArgs(m, bin),
      // --rpc/--tensor-split for models split over RPC workers; refuses the start when one is down.
      requiredLaunchArgs: (m) => services.rpcWorkers.launchArgs(m),
    },
  };
  const supervisor = overrides.supervisor ? overrides.supervisor(supervisorDeps) : new Supervisor(supervisorDeps);
  const memory = new MemoryService({
    db, config: () => config.get(), gpu: () => services.collector.gpu, log, bus,
    // A model over RPC workers offloads to their devices even on a host without GPUs.
    remoteOffload: (row) => !!row.settings?.rpc && (rpcTargetOf(row.settings.rpc, row.settings.tensorSplit, services.rpcWorkers?.snapshot() ?? [])?.devices.length ?? 0) > 0,
  });
  // The RPC workers' devices count for models started over them (read when a plan is made).
  const pool = new ModelPool({ supervisor: () => supervisor, registry, config: () => config.get(), memory, log, bus, rpcWorkers: () => services.rpcWorkers?.snapshot() ?? [], refreshRpcWorkers: (rpc, onlyUnknown) => services.rpcWorkers?.refresh(rpc, onlyUnknown) ?? Promise.resolve() });
  // Before any stop of a running model (eviction, idle TTL, user, restart, shutdown): save its slots.
  // Bounded by the stricter of the pool's hook deadline and the stop's grace period (stopTimeoutSeconds).
  pool.onBeforeStop((id, ctx) => kvcache.beforeStop(id, ctx.baseUrl, AbortSignal.any([ctx.signal, AbortSignal.timeout(Math.max(1, config.get().stopTimeoutSeconds * 1000))])));
  const requests = new RequestStats(bus);
  const activity = new ActivityLog(db, () => config.get(), log.child("activity"), bus, options.activity);
  const tracker = new RequestTracker(bus, (row) => activity.add(row));
  const cpu = new CpuSampler();
  const startedAt = new Date();
  const collector = new MetricsCollector({
    bus, log: log.child("metrics"), config, registry, requests, cpu,
    supervisor,
    dataDir: options.dataDir,
    startedAt,
    history: new MetricsHistory(db, () => config.get().historyRetentionHours),
  });
  const instanceId = loadInstanceId(options.dataDir);
  const peers = new PeerRegistry({ config, log: log.child("peers"), bus, instanceId }, options.peers);
  options.startup?.mark("supervisor, pool, collector");
  const services: Services = {
    options,
    version: APP_VERSION,
    startedAt,
    bus,
    logs,
    log,
    config,
    db,
    registry,
    cpu,
    supervisor,
    pool,
    kvcache,
    memory,
    proxyOptions: { ...DEFAULT_PROXY_OPTIONS, ...options.proxy },
    requests,
    tracker,
    captures: new CaptureStore(() => config.get().captureMaxMB * MIB, bus),
    activity,
    reloader: undefined as unknown as ConfigReloader,
    keyLimiter: new KeyLimiter(bus, (name, since) => {
      const k = activity.summary(since).keys.find((x) => x.name === name);
      return k ? k.promptTokens + k.completionTokens : 0;
    }),
    collector,
    recent: new RecentMetrics(bus, requests),
    server: { port: options.port, host: options.host },
    hub: new RealtimeHub(options.realtime),
    instanceId,
    peers,
    rpcWorkers: new RpcWorkers(
      {
        config, log: log.child("rpc"), bus,
        lifecycle: () => ({
          stateOf: (id) => services.supervisor.runtimeOf(id)?.state,
          failRunning: (id, reason) => services.supervisor.failRunning?.(id, reason) ?? false,
          restart: (id) => services.pool.start(id),
        }),
      },
      options.rpcWorkers,
    ),
    auth: new Authenticator(options.apiKey, Date.now, () => config.namedKeys()),
    bodyBudget: new BodyBudget(options.maxInFlightBodyBytes ?? DEFAULT_MAX_IN_FLIGHT_BODY_BYTES),
    hosts: new HostAllowList({
      allowedHosts: options.allowedHosts ?? [],
      boundHost: options.host,
      port: () => services.server.port,
      allowedOrigins: options.realtime?.allowedOrigins ?? [],
    }),
  };
  options.startup?.mark("realtime hub");
  // Reads services.pool/supervisor when it acts, so a supervisor swapped in by tests is the one used.
  services.reloader = new ConfigReloader(services);
  return services;
}

/** Stops everything that holds a resource, in reverse order of need. Safe to call twice. */
export async function shutdownServices(s: Services): Promise<void> {
  s.pool.close();
  s.peers.close();
  s.rpcWorkers.close();
  // Flush the minute in progress while the database is still open.
  await s.collector.stop();
  s.hub.close();
  s.recent.dispose();
  await s.pool.stopAll(); // beforeStop hooks, then every child
  // After the children stopped: the requests they were serving have ended and are in the batch.
  s.activity.close();
  s.reloader.stop();
  try {
    closeDatabase(s.db);
  } catch {
    // already closed
  }
}
