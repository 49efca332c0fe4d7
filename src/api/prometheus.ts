import { Hono } from "hono";
import { requireAuth } from "../http/auth";
import { renderPrometheus } from "../metrics/prometheus";
import { renderKeyMetrics } from "../keys/metrics";
import type { Services } from "../services";

/** Everything GET /metrics exposes, gathered from the services that own it. */
export async function prometheusText(s: Services): Promise<string> {
  const sample = await s.collector.current();
  const text = renderPrometheus({
    version: s.version,
    sample,
    requests: s.requests.snapshot(),
    latency: s.collector.latency,
    runtimes: s.supervisor.runtimes(),
    registeredModels: s.registry.list().length,
    llamaServers: sample?.llamaServers ?? [],
    kvCache: { counters: s.kvcache.counters, ...s.kvcache.totals() },
    peers: s.peers.snapshot(),
    rpcWorkers: s.rpcWorkers.snapshot(),
  });
  return (text.endsWith("\n") ? text : text + "\n") + renderKeyMetrics(s.keyLimiter.counters, s.activity);
}

/**
 * GET /metrics, mounted at app level outside /api: scrapers expect /metrics and plain text.
 * Behind the API key when one is set (it names models); scrapers send it as a bearer token.
 */
export function prometheusRoutes(s: Services) {
  return new Hono()
    .use(requireAuth(s.auth, "envelope"))
    .get("/", async (c) => c.text(await prometheusText(s), 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" }));
}
