import { Hono } from "hono";
import { consoleRoutes } from "./console/routes";
import { kvCacheRoutes } from "./api/kv-cache";
import { modelControlRoutes } from "./api/model-control";
import { modelRoutes } from "./api/models";
import { logsRoutes } from "./api/logs";
import { monitoringRoutes } from "./api/monitoring";
import { prometheusRoutes } from "./api/prometheus";
import { configRoutes } from "./api/config";
import { healthRoutes } from "./api/health";
import { importRoutes } from "./api/import";
import { activityRoutes } from "./api/activity";
import { requestRoutes } from "./api/requests";
import { modelRestartRoutes } from "./api/model-restart";
import { statusRoutes } from "./api/status";
import { peerRoutes } from "./peers/routes";
import { rpcWorkerRoutes } from "./rpc/routes";
import { requireAuth } from "./http/auth";
import { inferenceAuth } from "./keys/middleware";
import { createCoreApp, type CoreApp } from "./core-app";
import { proxyRoutes } from "./proxy/routes";
import { MODEL_ROUTED_PATHS } from "./proxy/paths";
import { ollamaRoutes } from "./ollama/routes";
import type { Services } from "./services";

/**
 * The API routes but /monitoring (the core app serves it, src/core-app.ts), chained so their
 * types flow into the typed client (src/client.ts).
 */
export function apiRoutes(s: Services) {
  return new Hono()
    .route("/config", configRoutes(s))
    .route("/health", healthRoutes(s))
    .route("/models", modelRoutes(s))
    .route("/models", modelControlRoutes(s))
    .route("/models", kvCacheRoutes(s))
    .route("/status", statusRoutes(s))
    .route("/logs", logsRoutes(s))
    .route("/import", importRoutes(s))
    .route("/activity", activityRoutes(s))
    .route("/requests", requestRoutes(s))
    .route("/models", modelRestartRoutes(s))
    .route("/peers", peerRoutes(s))
    .route("/rpc-workers", rpcWorkerRoutes(s));
}

/**
 * The typed client's routes: these and the core's /monitoring as one chain, as Hono types a
 * mounted app. Only its type is used: at run time /monitoring is the core app's.
 */
const clientRoutes = (s: Services) => apiRoutes(s).route("/monitoring", monitoringRoutes(s));
export type ApiRoutes = ReturnType<typeof clientRoutes>;

/**
 * Adds every route but the core's (src/core-app.ts) to the core app, in the order they always had:
 * after the core's middlewares, so those run first for each of them.
 */
export function addRoutes(app: CoreApp, s: Services): CoreApp {
  // Prometheus scrape endpoint, outside /api.
  app.route("/metrics", prometheusRoutes(s));
  app.route("/", ollamaRoutes(s));
  app.route("/api", apiRoutes(s));
  // The web console: pages, htmx fragments, /static/*. Its forms call /api in process.
  app.route("/", consoleRoutes(s, { fetch: (req) => app.fetch(req) }));

  // OpenAI-compatible and llama-server native endpoints, routed to models by the proxy.
  // /v1 and the native inference routes also take named inference keys (src/keys/); the raw
  // /upstream passthrough (llama-server's own UI, /slots, /props) stays admin-only.
  const inference = inferenceAuth(s.auth);
  app.use("/v1/*", inference);
  app.use("/upstream/*", requireAuth(s.auth, "openai"));
  for (const path of MODEL_ROUTED_PATHS) if (!path.startsWith("/v1/")) app.use(path, inference);
  app.route("/", proxyRoutes(s, s.pool, s.proxyOptions));
  return app;
}

/**
 * The whole app, both parts at once. No I/O of its own, so tests drive it through
 * createApp(services).request(...); server.ts builds the same app in two steps.
 */
export function createApp(s: Services): CoreApp {
  return addRoutes(createCoreApp(s), s);
}
