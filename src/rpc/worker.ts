import { Hono } from "hono";
import { Authenticator, requireAuth } from "../http/auth";
import { errorBody, ok } from "../http/envelope";
import { APP_NAME, APP_VERSION } from "../version";
import { RpcServerSupervisor, type RpcServerOptions, type RpcServerStatus } from "./rpc-server";

/** `llama-async-proxy worker`: what the flags said. */
export interface WorkerOptions {
  /** The worker's own HTTP API. */
  port: number;
  host: string;
  /** Required: the API tells where an unauthenticated rpc-server listens. */
  apiKey: string;
  rpc: Omit<RpcServerOptions, "onLine">;
  quiet?: boolean;
}

/** GET /api/worker: the worker and its rpc-server. */
export interface WorkerStatus extends RpcServerStatus {
  version: string;
  /** The binary and flags rpc-server runs with. */
  command: string[];
}

export function workerApp(rpc: RpcServerSupervisor, apiKey: string) {
  const app = new Hono();
  // Every route needs the key: even the endpoint is something only the main instance should learn.
  app.use("*", requireAuth(new Authenticator(apiKey), "envelope"));
  app.get("/api/worker", (c) => ok(c, { ...rpc.status(), version: APP_VERSION, command: rpc.argv() } satisfies WorkerStatus));
  app.get("/api/health", (c) => {
    const st = rpc.status();
    return c.json({ success: st.state === "running", data: { status: st.state === "running" ? "healthy" : "unhealthy", rpcServer: st.state }, timestamp: new Date().toISOString() }, st.state === "running" ? 200 : 503);
  });
  app.notFound((c) => c.json(errorBody("NOT_FOUND", "Resource not found", `${c.req.method} ${c.req.path} does not exist`), 404));
  return app;
}

export interface RunningWorker {
  url: string;
  rpc: RpcServerSupervisor;
  stop(): Promise<void>;
}

/** Starts rpc-server under supervision and serves the worker API (tests: port 0). */
export async function startWorker(o: WorkerOptions): Promise<RunningWorker> {
  const log = (line: string) => {
    if (!o.quiet) process.stderr.write(`[rpc-server] ${line}\n`);
  };
  const rpc = new RpcServerSupervisor({ ...o.rpc, onLine: log });
  const server = Bun.serve({ port: o.port, hostname: o.host, fetch: workerApp(rpc, o.apiKey).fetch });
  const host = o.host.includes(":") ? `[${o.host}]` : o.host;
  const url = `http://${host}:${server.port}`;
  // Serve at once (the API says "starting"); rpc-server comes up in the background.
  void rpc.start();
  let stopping: Promise<void> | undefined;
  return {
    url,
    rpc,
    stop: () =>
      (stopping ??= (async () => {
        server.stop(true);
        await rpc.stop();
      })()),
  };
}

export const WORKER_BANNER = (url: string) => `${APP_NAME} ${APP_VERSION} worker listening on ${url}`;
