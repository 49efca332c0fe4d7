import { uptimeSeconds } from "../api/health";
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
 * The hub's data sources over the services. Each is read when needed, so a supervisor swapped in
 * after startup is the one asked.
 */
export function realtimeSources(s: Services): RealtimeSources {
  return {
    bus: s.bus,
    log: s.log.child("realtime"),
    apiKey: s.options.apiKey,
    metrics: () => s.collector.latest() ?? snapshotMetrics(s),
    models: () => listModels(s),
    recentLogs: (limit) => s.logs.query({ limit }),
    modelsLoading: () => s.supervisor.runtimes().some((r) => r.state === "loading"),
  };
}
