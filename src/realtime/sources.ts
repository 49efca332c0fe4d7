import { uptimeSeconds } from "../api/health";
import type { EventBus } from "../events";
import type { Logger } from "../logs/logger";
import type { SystemMetrics } from "../metrics/types";
import { readDisk, readMemory } from "../metrics/system";
import { listModels } from "../models/view";
import type { Services } from "../services";
import type { RealtimeSources } from "./hub";

/**
 * SystemMetrics built on demand from what every build has (CPU, memory, disk, model and request
 * counters). Used until the monitoring collector emits "metrics.sample", which then wins.
 */
export function snapshotMetrics(s: Services): SystemMetrics {
  const runtimes = s.supervisor.runtimes();
  const perf = s.requests.snapshot();
  return {
    timestamp: new Date().toISOString(),
    cpu: s.cpu.sample(),
    memory: readMemory(),
    disk: readDisk(s.options.dataDir),
    models: {
      active: runtimes.filter((r) => r.state === "running").length,
      total: s.registry.list().length,
      memoryUsage: runtimes.reduce((sum, r) => sum + (r.memoryUsage ?? 0), 0),
    },
    requests: { total: perf.total, active: perf.active, averageResponseTime: perf.averageResponseTime, errorRate: perf.errorRate },
    uptime: uptimeSeconds(s),
  };
}

/**
 * The hub's data sources over the services. `services` is read lazily: the hub is built inside
 * createServices, before the object exists, and the supervisor may be swapped in later.
 */
export function realtimeSources(bus: EventBus, log: Logger, apiKey: string | undefined, services: () => Services): RealtimeSources {
  return {
    bus,
    log,
    apiKey,
    metrics: () => snapshotMetrics(services()),
    models: () => listModels(services()),
    recentLogs: (limit) => services().logs.query({ limit }),
    modelsLoading: () => services().supervisor.runtimes().some((r) => r.state === "loading"),
  };
}
