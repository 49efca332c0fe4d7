import { Hono } from "hono";
import { ok } from "../http/envelope";
import type { Services } from "../services";
import { checkServerBinary } from "../supervisor/binary";

/** The data of GET /api/health (the seed API shape, plus `config` and llama_server.message). */
export function buildHealth(s: Services) {
  const cfg = s.config.get();
  const binary = checkServerBinary(cfg.serverPath);
  const llama = llamaServerHealth(s, binary.found);
  // The collector's latest sample: health checks are frequent and must not disturb the CPU
  // deltas the collector measures, nor wait on disks or nvidia-smi.
  const sample = s.collector.latest();
  const configOk = s.config.loadError === null;
  const healthy = binary.found && configOk && llama.status !== "unhealthy";
  const now = new Date().toISOString();
  return {
    status: (healthy ? "healthy" : "unhealthy") as "healthy" | "unhealthy",
    timestamp: now,
    services: {
      proxy: { status: "healthy", uptime: uptimeSeconds(s), version: s.version },
      llama_server: {
        status: llama.status,
        host: cfg.host,
        // The port of a running model's llama-server (the configured base port when none runs).
        port: llama.port ?? cfg.port,
        models_loaded: llama.modelsLoaded,
        // When nothing runs, the binary check just made is the latest check there is.
        last_health_check: s.supervisor.lastHealthCheck() ?? now,
        ...(llama.message ?? binary.reason ? { message: llama.message ?? binary.reason } : {}),
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

/**
 * llama_server.status: "not available" (no usable binary), "healthy" (a model runs), "loading",
 * "unhealthy" (models failed and none runs), "idle" (nothing started).
 */
export function llamaServerHealth(s: Pick<Services, "supervisor">, binaryFound: boolean) {
  const runtimes = s.supervisor.runtimes();
  const running = runtimes.filter((r) => r.state === "running");
  const loading = runtimes.filter((r) => r.state === "loading");
  const failed = runtimes.filter((r) => r.state === "error");
  let status: "healthy" | "idle" | "loading" | "not available" | "unhealthy";
  if (running.length) status = "healthy";
  else if (loading.length) status = "loading";
  else if (failed.length) status = "unhealthy";
  else status = binaryFound ? "idle" : "not available";
  const message = !running.length && !loading.length && failed.length
    ? `${failed.map((r) => `${r.modelId}: ${r.error?.message ?? "failed"}`).join("; ")}`
    : undefined;
  return { status, modelsLoaded: running.length, port: running[0]?.port, message };
}

export const uptimeSeconds = (s: Services) => Math.floor((Date.now() - s.startedAt.getTime()) / 1000);

export function healthRoutes(s: Services) {
  return new Hono().get("/", async (c) => {
    // Before the collector's first sample (it starts after listening), take one now.
    await s.collector.current();
    const health = buildHealth(s);
    // 503 when unhealthy, per the seed API; the body is still the success envelope with the
    // full report, so monitors see *why*.
    return ok(c, health, { status: health.status === "healthy" ? 200 : 503 });
  });
}

