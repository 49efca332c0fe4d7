import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { monitoringRoutes } from "./api/monitoring";
import { requireAuth } from "./http/auth";
import { errorBody, fail } from "./http/envelope";
import { ApiError, codeForStatus } from "./http/errors";
import { guardMiddleware, type ErrorShape } from "./http/guard";
import { openAiFail } from "./http/openai";
import { CachingRouter } from "./http/router";
import { isOllamaPath, ollamaErrorBody } from "./ollama/paths";
import { MODEL_ROUTED_PATHS } from "./proxy/paths";
import type { Services } from "./services";

const isOpenAiPath = (path: string) => path.startsWith("/v1/") || path === "/v1";
const NATIVE_PATHS = new Set<string>(MODEL_ROUTED_PATHS);

/** Which error shape a path's clients parse: OpenAI's on /v1, /upstream and llama-server's native paths, Ollama's on its routes. */
export function errorShapeOf(path: string): ErrorShape {
  if (isOllamaPath(path)) return "ollama";
  if (isOpenAiPath(path) || path.startsWith("/upstream/") || NATIVE_PATHS.has(path)) return "openai";
  return "envelope";
}

/** What the core app serves itself: GET /api/monitoring and its history. */
export const CORE_PATH = "/api/monitoring";
export const isCorePath = (path: string) => path === CORE_PATH || path.startsWith(`${CORE_PATH}/`);

/**
 * The app's first part: every middleware (Host/Origin guard, body budget, auth, body limits), the
 * error handlers, and /api/monitoring. src/app.ts adds every other route to the same app.
 *
 * Why two parts: the other routes' modules (console pages, Ollama's and the proxy's relays, the
 * API's schemas) are most of the code start-up evaluates, and none of it is needed for the
 * first answer a health check or a dashboard asks for. server.ts listens with this part and
 * adds the rest right behind it (bench/RESULTS.md "#16, round five"); the first request for
 * one of the other routes adds them on the spot. Tests get both parts at once from createApp().
 *
 * Order matters in Hono (handlers run in the order they were added): the middlewares here run
 * before every route added later, as they did when this was one function.
 */
export function createCoreApp(s: Services) {
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

  app.route(CORE_PATH, monitoringRoutes(s));

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

export type CoreApp = ReturnType<typeof createCoreApp>;
