import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createApp } from "../../src/app";
import { startServer, type RunningServer } from "../../src/server";
import { createServices, shutdownServices, type RuntimeOptions, type ServiceOverrides, type Services } from "../../src/services";

/** The fake llama-server (answers --version like the real one), for a serverPath that must pass. */
export const FAKE_LLAMA_SERVER = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");

export interface TestContext {
  dir: string;
  services: Services;
  app: ReturnType<typeof createApp>;
  cleanup(): Promise<void>;
}

/** Real services on an in-memory database and a temporary data directory (test doubles via `doubles`). */
export function makeTestServices(overrides: Partial<RuntimeOptions> = {}, doubles: ServiceOverrides = {}): TestContext {
  const dir = mkdtempSync(join(tmpdir(), "lap-test-"));
  const services = createServices({
    port: 0,
    host: "127.0.0.1",
    dataDir: dir,
    configPath: join(dir, "llama-server-config.json"),
    logLevel: "error",
    environment: "test",
    quiet: true,
    databasePath: ":memory:",
    ...overrides,
  }, doubles);
  const app = createApp(services);
  return {
    dir,
    services,
    app,
    async cleanup() {
      await shutdownServices(services);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** POST/PUT/PATCH a JSON body through app.request(). */
export function jsonRequest(method: string, body: unknown): RequestInit {
  return { method, headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) };
}

/** Polls `check` until it returns a truthy value or the deadline passes (no fixed sleeps). */
type Truthy<T> = Exclude<T, null | undefined | false | 0 | "">;

export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000, everyMs = 10): Promise<Truthy<Awaited<T>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as Truthy<Awaited<T>>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(everyMs);
  }
}

export const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/**
 * A real proxy on port 0 (startServer) whose supervisor runs the fake llama-server (a real
 * process), on an in-memory database: the set-up of the end-to-end suites. `config` adds to the
 * proxy's config (limits, timeouts); `fakeModel` registers a GGUF-named file the fake accepts.
 */
export async function startProxyWithFakeLlama(
  prefix: string,
  options: Partial<RuntimeOptions> = {},
  config: Record<string, unknown> = {},
): Promise<{ dir: string; srv: RunningServer; fakeModel(id: string, settings?: Record<string, unknown>): void; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `lap-${prefix}-`));
  const srv = await startServer({
    port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"),
    logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:",
    ...options,
  });
  srv.services.config.update({
    ...srv.services.config.get(), serverPath: FAKE_LLAMA_SERVER, host: "127.0.0.1", port: 20000 + Math.floor(Math.random() * 20000),
    stopTimeoutSeconds: 2, maxRestarts: 0, ...config,
  } as ReturnType<typeof srv.services.config.get>);
  return {
    dir,
    srv,
    fakeModel(id, settings = {}) {
      const path = join(dir, `${id}.gguf`);
      writeFileSync(path, "GGUF fake weights");
      srv.services.registry.insert([{ id, name: id, path, size: 17, family: "llama", format: "gguf", settings }]);
    },
    async stop() {
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
