import type { Server } from "bun";
import { dirname } from "node:path";
import { createCoreApp, isCorePath } from "./core-app";
import { removeStaleTempFiles } from "./config/store";
import { isSameProcessAlive } from "./supervisor/pidfile";
import { liftIdleTimeout, restoreIdleTimeout } from "./http/connection-timeout";
import { errorBody } from "./http/envelope";
import { checkRequest, guardInput, refusalResponse, SOCKET_PATH } from "./http/guard";
import { startBackgroundDiscovery } from "./models/catalog";
import { realtimeSources } from "./realtime/sources";
import { createServices, shutdownServices, type RuntimeOptions, type ServiceOverrides, type Services } from "./services";

/** Idle keep-alive connections are closed after this many seconds (nginx uses 75). */
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 60;

/** How long a shutdown waits for cancelled requests to send their error before closing sockets. */
const SHUTDOWN_DRAIN_MS = 2000;

/**
 * The routes beyond the core app's are loaded this long after the listen when no request asked
 * for them sooner: the requests of a start-up burst (the poll that waited for "listening on", a
 * health check) are answered first, without waiting for the console's and the relays' code.
 */
const ROUTES_LOAD_DELAY_MS = 50;

export interface RunningServer {
  server: Server<unknown>;
  services: Services;
  url: string;
  /** Stop accepting, stop every child process, close the database. Idempotent. */
  stop(): Promise<void>;
  /** Settles when the background start-up work (the basePath scan) has finished. */
  startupDone: Promise<void>;
  /** Whether the routes beyond the core app's are in (src/core-app.ts); `routesReady` settles when they are. */
  readonly routesLoaded: boolean;
  routesReady: Promise<void>;
}

/** Builds the services and serves them; used by main.ts and by end-to-end tests (port 0). */
export async function startServer(options: RuntimeOptions, overrides: ServiceOverrides = {}): Promise<RunningServer> {
  const t = options.startup;
  // Temp files of atomic writes cut short by a kill -9 (config, pidfile) go before anything reads.
  for (const dir of new Set([dirname(options.configPath), options.dataDir])) {
    removeStaleTempFiles(dir, (pid) => isSameProcessAlive({ pid, startTime: null }));
  }
  const services = createServices(options, overrides);
  // Children a kill -9'd predecessor left behind still hold ports and memory. They are stopped in
  // the background, since a stop can take the whole grace period: model loads wait for it (in
  // the supervisor), the listen does not.
  const orphans = (services.supervisor.cleanupOrphans?.() ?? Promise.resolve(0)).catch((err: Error) =>
    services.log.warn(`Stopping processes left by a previous run failed: ${err.message}`),
  );
  t?.mark("orphan check");
  // Listening with the core app (middlewares, error handlers, /api/monitoring: src/core-app.ts);
  // the other routes are added to it behind the listen (see loadRoutes below).
  const app = createCoreApp(services);
  t?.mark("routes");
  const { hub } = services;
  const idleTimeout = options.idleTimeoutSeconds ?? DEFAULT_IDLE_TIMEOUT_SECONDS;
  let routesLoaded = false;
  let routesTried = false;
  const routesReady = Promise.withResolvers<void>();
  // A require() inside a function: the bundle evaluates src/app.ts's modules (the console,
  // Ollama's and the proxy's routes) only when this runs, synchronously. Once, whoever comes
  // first: the first request for one of those routes, or the timer below. (A dynamic import()
  // did the same through a promise and paged in ~1.8 MB more of Bun's own code: bench/RESULTS.md
  // "#16, round five".) A failure is a bug (the modules are in the bundle): it is not retried,
  // and the request that met it gets the 500 of Bun.serve's error handler.
  const loadRoutes = () => {
    if (routesTried) return;
    routesTried = true;
    const { addRoutes } = require("./app") as typeof import("./app");
    addRoutes(app, services);
    routesLoaded = true;
    routesReady.resolve();
  };
  const serve = (req: Request, srv: Server<unknown>) => {
    // A request being worked on may be silent for minutes (a model loading, a long prompt):
    // no idle timeout while its handler runs; put back when it has answered, or when a
    // streamed answer ends (src/http/connection-timeout.ts).
    liftIdleTimeout(req, srv, idleTimeout);
    const res = app.fetch(req, srv);
    return res instanceof Promise ? res.then((r) => (restoreIdleTimeout(req), r)) : (restoreIdleTimeout(req), res);
  };
  const server = Bun.serve({
    port: options.port,
    hostname: options.host,
    // /llamaproxws (WebSocket upgrades and Engine.IO polling) goes to the realtime hub first.
    // handle() answers null for other paths and undefined once it has upgraded the connection.
    fetch: (req, srv) => {
      // The hub answers outside Hono, so the request guard (Host, Origin, Fetch Metadata) is
      // applied to its path here; every other path meets it as the app's first middleware.
      if (req.url.includes(SOCKET_PATH)) {
        const url = new URL(req.url);
        const refusal = checkRequest(guardInput(req, url), services.hosts);
        if (refusal) return refusalResponse(refusal, url.searchParams.has("EIO") ? "engineio" : "envelope");
      }
      const answer = hub.handle(req, srv);
      if (answer !== null) return answer;
      // Until the other routes are in, the core's paths are answered without them; any other
      // request adds them first (synchronously), then goes through the app as always.
      if (!routesLoaded && !isCorePath(new URL(req.url).pathname)) loadRoutes();
      return serve(req, srv);
    },
    websocket: hub.websocket,
    // Never Bun's development error page (it shows source lines and paths to whoever asks), and
    // an error that escapes a handler (the hub runs outside Hono's onError) is a bare 500 with
    // the stack in our log only.
    development: false,
    error: (err) => {
      services.log.error(`Unhandled error in a request handler: ${err.message}`, { stack: err.stack });
      return Response.json(errorBody("INTERNAL_ERROR", "Internal server error", "An unexpected error occurred; see the server log"), { status: 500 });
    },
    // Idle keep-alive and half-open connections are closed after this (they were kept for ever);
    // requests in progress are exempt (see liftIdleTimeout above).
    idleTimeout,
  });
  t?.mark("listen");
  const routesTimer = setTimeout(() => {
    try {
      loadRoutes();
    } catch (err) {
      services.log.error(`Adding the routes failed: ${(err as Error).message}`, { stack: (err as Error).stack });
    }
  }, options.routesLoadDelayMs ?? ROUTES_LOAD_DELAY_MS);
  services.server = { port: server.port!, host: options.host };
  hub.attach(server, realtimeSources(services));
  t?.mark("realtime attach");
  const hostForUrl = options.host.includes(":") ? `[${options.host}]` : options.host;
  const url = `http://${hostForUrl}:${server.port}`;
  // The first sample before anything else that starts now: its await is on microtasks only, so
  // it is in place before the loop turns to the first request, whatever the rest schedules.
  const firstSample = services.collector.start();
  // The rest of what starts now (~10 ms of CPU: the config watcher, autostart planning, peers,
  // RPC workers, the folder scan) waits for the event loop's next turn, so a request that came in
  // while the modules loaded is answered first. startServer still resolves only once all of it
  // has started (callers, main's banner and the tests, see a server with everything running),
  // and an error in it rejects startServer as before.
  const backgroundStarts = new Promise<ReturnType<typeof startBackgroundDiscovery>>((resolve, reject) =>
    setTimeout(() => {
      try {
        services.reloader.start();
        services.pool.autoStart();
        // Peers are checked in the background from now on (the first round at once).
        services.peers.start();
        services.rpcWorkers.start();
        // One scan of config.basePath in the background: startup never waits for a slow disk.
        resolve(startBackgroundDiscovery(services));
      } catch (err) {
        reject(err);
      }
    }, 0),
  );

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      clearTimeout(routesTimer);
      // Tell realtime clients first (reconnect notice + close frame), then stop accepting.
      hub.close();
      // In-flight requests end with an error the client can read (an SSE error event on a stream)
      // rather than a cut socket: cancel them, then let Bun stop gracefully so those last bytes are
      // written, and only after a short bound close whatever is still open.
      if (services.tracker.cancelAll("because the server is shutting down") > 0) {
        await Promise.race([server.stop(false), Bun.sleep(SHUTDOWN_DRAIN_MS)]);
      }
      server.stop(true);
      // Abort the startup scan and let it settle before the database closes under it.
      const startupScan = await backgroundStarts.catch(() => null);
      startupScan?.abort();
      await startupScan?.done;
      // Never leave a predecessor's orphan half-stopped behind us.
      await orphans;
      await shutdownServices(services);
    })());
  const running: RunningServer = {
    server,
    services,
    url,
    stop,
    startupDone: backgroundStarts.then((scan) => scan.done).then(() => {}, () => {}),
    get routesLoaded() {
      return routesLoaded;
    },
    routesReady: routesReady.promise,
  };
  // After listening: the first sample (started above), so /api/monitoring has data at once.
  await firstSample;
  t?.mark("first metrics sample");
  // From here it answers: main.ts prints "listening on" now, not after the background starts
  // (their ~1-4 ms, the registry's first full read among them, plus a turn of the loop), and
  // can stop it cleanly from now on (stop() waits for the background starts).
  options.onListening?.(running);
  await backgroundStarts;
  t?.mark("background starts");
  // A signal may have stopped it meanwhile (main.ts can from onListening on): nothing more to start.
  if (stopping) return running;
  // Retention of the activity log starts with a delete: after the first sample, not before it.
  // (Requests are recorded from the listen on; start() only starts the pruning.)
  services.activity.start();
  if (t) {
    services.log.debug(`Start-up steps (ms): ${t.describe()}; total ${t.totalMs.toFixed(1)}; RSS ${(process.memoryUsage.rss() / 2 ** 20).toFixed(1)} MB`);
    services.log.debug(`Start-up CPU (ms): ${t.describe("cpu")}; total ${t.totalCpuMs.toFixed(1)}`);
  }
  return running;
}
