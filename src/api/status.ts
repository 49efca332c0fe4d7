import { Hono } from "hono";
import { ok } from "../http/envelope";
import type { Services } from "../services";
import { APP_NAME } from "../version";
import { uptimeSeconds } from "./health";

export function buildStatus(s: Services) {
  const registered = s.registry.list().length;
  return {
    application: {
      name: APP_NAME,
      version: s.version,
      environment: s.options.environment,
      uptime: uptimeSeconds(s),
      start_time: s.startedAt.toISOString(),
    },
    server: { port: s.server.port, host: s.server.host, ssl: false, cors_enabled: false },
    websocket: { connected_clients: 0, active_connections: 0, messages_per_second: 0 },
    models: { registered, loaded: 0, loading: 0, failed: 0 },
    performance: { requests_total: 0, requests_active: 0, average_response_time: 0, error_rate: 0 },
  };
}

export function statusRoutes(s: Services) {
  return new Hono().get("/", (c) => ok(c, buildStatus(s)));
}
