import type { Server } from "bun";
import { createApp } from "./app";
import { createServices, shutdownServices, type RuntimeOptions, type Services } from "./services";

export interface RunningServer {
  server: Server<unknown>;
  services: Services;
  url: string;
  /** Stop accepting, stop every child process, close the database. Idempotent. */
  stop(): Promise<void>;
}

/** Builds the services and serves them; used by main.ts and by end-to-end tests (port 0). */
export async function startServer(options: RuntimeOptions): Promise<RunningServer> {
  const services = createServices(options);
  const app = createApp(services);
  const server = Bun.serve({
    port: options.port,
    hostname: options.host,
    fetch: app.fetch,
    // Streams from llama-server can pause for minutes while a model thinks.
    idleTimeout: 0,
  });
  services.server = { port: server.port!, host: options.host };
  const hostForUrl = options.host.includes(":") ? `[${options.host}]` : options.host;
  const url = `http://${hostForUrl}:${server.port}`;

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      server.stop(true);
      await shutdownServices(services);
    })());
  // After listening: the first sample is taken now, so /api/monitoring has data at once.
  await services.collector.start();
  return { server, services, url, stop };
}
