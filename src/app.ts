import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
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
import { CachingRouter } from "./http/router";
import { inferenceAuth } from "./keys/middleware";
import { guardMiddleware, type ErrorShape } from "./http/guard";
import { errorBody, fail } from "./http/envelope";
import { ApiError, codeForStatus } from "./http/errors";
import { openAiFail } from "./http/openai";
import { MODEL_ROUTED_PATHS, proxyRoutes } from "./proxy/routes";
import { isOllamaPath, ollamaErrorBody, ollamaRoutes } from "./ollama/routes";
import type { Services } from "./services";

const isOpenAiPath = (path: string) => path.startsWith("/v1/") || path === "/v1";
const NATIVE_PATHS = new Set<string>(MODEL_ROUTED_PATHS);

/** Which error shape a path's clients parse: OpenAI's on /v1, /upstream and llama-server's native paths, Ollama's on its routes. */
export function errorShapeOf(path: string): ErrorShape {
  if (isOllamaPath(path)) return "ollama";
  if (isOpenAiPath(path) || path.startsWith("/upstream/") || NATIVE_PATHS.has(path)) return "openai";
  return "envelope";
}

/** The API routes, chained so their types flow into the typed client (src/client.ts). */
export function apiRoutes(s: Services) {
  return new Hono()
    .route("/config", configRoutes(s))
    .route("/health", healthRoutes(s))
    .route("/models", modelRoutes(s))
    .route("/models", modelControlRoutes(s))
    .route("/models", kvCacheRoutes(s))
    .route("/status", statusRoutes(s))
    .route("/logs", logsRoutes(s))
    .route("/monitoring", monitoringRoutes(s))
    .route("/import", importRoutes(s))
    .route("/activity", activityRoutes(s))
    .route("/requests", requestRoutes(s))
    .route("/models", modelRestartRoutes(s))
    .route("/peers", peerRoutes(s))
    .route("/rpc-workers", rpcWorkerRoutes(s));
}

export type ApiRoutes = ReturnType<typeof apiRoutes>;

/**
 * Builds the Hono app from the services. No I/O of its own, so tests drive it through
 * createApp(services).request(...).
 */
export function createApp(s: Services) {
  // The trie with each path's match kept (src/http/router.ts): most of the router's cost per request.
  const app = new Hono({ router: new CachingRouter() });

  // Before everything: Host allow-list, Origin, Fetch Metadata, JSON content type (src/http/guard.ts).
  app.use("*", guardMiddleware(s.hosts, errorShapeOf, { anyBodyType: isOllamaPath }));
  // One budget for all request bodies being read at once (src/http/body-budget.ts).
  app.use("*", s.bodyBudget.middleware(errorShapeOf, (path) => (errorShapeOf(path) === "envelope" ? 1024 * 1024 : s.proxyOptions.maxBodyBytes)));
  // Ollama's routes share /api with the seed's (no path in common): they get the same key in
  // Ollama's error shape, and their own body limits and body parsing (src/ollama/routes.ts).
  const ollama = (c: { req: { path: string } }) => isOllamaPath(c.req.path);
  // Runs `mw` except on Ollama's paths. Not hono/combine's except(): that one builds a compose()
  // chain and throws away an Error for every request it lets through (CPU per /api request:
  // bench/footprint.ts).
  const unlessOllama = (mw: MiddlewareHandler): MiddlewareHandler => (c, next) => (ollama(c) ? next() : mw(c, next));
  const ollamaAuth = requireAuth(s.auth, "ollama");
  const apiAuth = requireAuth(s.auth, "envelope");
  app.use("/api/*", (c, next) => (ollama(c) ? ollamaAuth : apiAuth)(c, next));
  app.use(
    "/api/*",
    unlessOllama(bodyLimit({
      maxSize: 1024 * 1024,
      // The same rule as /v1 (proxy/routes.ts): an oversized body is a 413.
      onError: (c) => fail(c, new ApiError("PAYLOAD_TOO_LARGE", "Request body too large", "The limit is 1 MiB")),
    })),
  );

  // Prometheus scrape endpoint, outside /api.
  app.route("/metrics", prometheusRoutes(s));

  // Every POST must now say application/json even without a body (src/http/guard.ts); a bodiless
  // one reads as {} so "POST /api/models/discover" with no body still means "all defaults".
  app.use("/api/*", unlessOllama(async (c, next) => {
    if (c.req.method !== "GET" && (c.req.raw.body === null || c.req.header("content-length") === "0")) {
      // Hono's json() reads bodyCache.text as a promise at run time (its type says string); the
      // bare-discover test in tests/api/models.test.ts fails if that ever changes.
      (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve("{}");
    }
    await next();
  }));

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

  app.notFound((c) => {
    if (isOllamaPath(c.req.path)) return c.json(ollamaErrorBody(`${c.req.method} ${c.req.path} is not an Ollama route`), 404);
    if (isOpenAiPath(c.req.path)) {
      return openAiFail(c, new ApiError("NOT_FOUND", `Unknown endpoint ${c.req.method} ${c.req.path}`));
    }
    return fail(c, new ApiError("NOT_FOUND", "Resource not found", `${c.req.method} ${c.req.path} does not exist`));
  });

  app.onError((err, c) => {
    if (isOllamaPath(c.req.path)) {
      const status = err instanceof ApiError || (err instanceof HTTPException && err.status < 500) ? err.status : 500;
      if (status === 500) s.log.error(`Unhandled error on ${c.req.method} ${c.req.path}: ${(err as Error).message}`, { stack: (err as Error).stack });
      return c.json(ollamaErrorBody(status === 500 ? "internal server error" : err.message), status);
    }
    const openai = isOpenAiPath(c.req.path);
    if (err instanceof ApiError) return openai ? openAiFail(c, err) : fail(c, err);
    if (err instanceof HTTPException && err.status < 500) {
      // Hono's own 4xx (e.g. "Malformed JSON in request body" from the json validator): the
      // catalogue's code for its status; a status without one keeps its status as INVALID_REQUEST.
      const code = codeForStatus(err.status) ?? "INVALID_REQUEST";
      if (openai) return openAiFail(c, new ApiError(code, err.message));
      return c.json(errorBody(code, err.status === 400 ? "Invalid request data" : err.message, err.message), err.status);
    }
    // Unexpected: log it with the stack, tell the client only that it happened.
    s.log.error(`Unhandled error on ${c.req.method} ${c.req.path}: ${(err as Error).message}`, { stack: (err as Error).stack });
    if (openai) return openAiFail(c, new ApiError("INTERNAL_ERROR", "Internal server error"));
    return fail(c, new ApiError("INTERNAL_ERROR", "Internal server error", "An unexpected error occurred; see the server log"));
  });

  return app;
}
