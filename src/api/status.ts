import { Hono } from "hono";
import { ok } from "../http/envelope";
import type { Services } from "../services";
import { APP_NAME } from "../version";
import { uptimeSeconds } from "./health";

export function buildStatus(s: Services) {
  const registered = s.registry.list().length;
  const runtimes = s.supervisor.runtimes();
  const count = (st: string) => runtimes.filter((r) => r.state === st).length;
  const perf = s.requests.snapshot();
  return {
    application: {
      name: APP_NAME,
      version: s.version,
      environment: s.options.environment,
      uptime: uptimeSeconds(s),
      start_time: s.startedAt.toISOString(),
    },
    server: { port: s.server.port, host: s.server.host, ssl: false, cors_enabled: false },
    websocket: s.hub.stats(),
    models: { registered, loaded: count("running"), loading: count("loading"), failed: count("error") },
    performance: {
      requests_total: perf.total,
      requests_active: perf.active,
      average_response_time: perf.averageResponseTime,
      error_rate: perf.errorRate,
    },
  };
}

export function statusRoutes(s: Services) {
  return new Hono().get("/", (c) => ok(c, buildStatus(s)));
}
