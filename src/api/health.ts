import { Hono } from "hono";
import { ok } from "../http/envelope";
import type { Services } from "../services";
import { checkServerBinary } from "../supervisor/binary";

/** The data of GET /api/health (reference shape, plus `config` and llama_server.message). */
export function buildHealth(s: Services) {
  const cfg = s.config.get();
  const binary = checkServerBinary(cfg.serverPath);
  const llamaStatus = binary.found ? "idle" : "not available";
  // The collector's latest sample: health checks are frequent and must not disturb the CPU
  // deltas the collector measures, nor wait on disks or nvidia-smi.
  const sample = s.collector.latest();
  const configOk = s.config.loadError === null;
  const healthy = binary.found && configOk;
  const now = new Date().toISOString();
  return {
    status: (healthy ? "healthy" : "unhealthy") as "healthy" | "unhealthy",
    timestamp: now,
    services: {
      proxy: { status: "healthy", uptime: uptimeSeconds(s), version: s.version },
      llama_server: {
        status: llamaStatus,
        host: cfg.host,
        port: cfg.port,
        models_loaded: 0,
        last_health_check: now,
        ...(binary.reason ? { message: binary.reason } : {}),
        ...(binary.path ? { path: binary.path } : {}),
      },
      config: {
        status: configOk ? "healthy" : "unhealthy",
        path: s.config.path,
        ...(s.config.loadError ? { message: s.config.loadError } : {}),
      },
    },
    system: sample
      ? { cpu_usage: sample.cpu.usage, memory_usage: sample.memory.usagePercent, disk_usage: sample.disk.usagePercent }
      : { cpu_usage: 0, memory_usage: 0, disk_usage: 0 },
  };
}

export const uptimeSeconds = (s: Services) => Math.floor((Date.now() - s.startedAt.getTime()) / 1000);

export function healthRoutes(s: Services) {
  return new Hono().get("/", async (c) => {
    // Before the collector's first sample (it starts after listening), take one now.
    if (!s.collector.latest()) await s.collector.sampleNow().catch(() => null);
    const health = buildHealth(s);
    // 503 when unhealthy, per the reference; the body is still the success envelope with the
    // full report, so monitors see *why*.
    return ok(c, health, { status: health.status === "healthy" ? 200 : 503 });
  });
}

