// Shared set-up of the browser tests: a real server (startServer, port 0) whose llama-server is
// the fake one, and Debian's Chromium driven by playwright-core with a fresh profile.
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startServer, type RunningServer } from "../../src/server";

export const CHROMIUM = "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM);
export const FAKE_SERVER = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");
export const ARTIFACTS = resolve(import.meta.dir, "artifacts");

export interface Harness {
  dir: string;
  server: RunningServer;
  url: string;
  /** Stops the server and starts a new one on the same port and data (a proxy restart). */
  restart(): Promise<void>;
  /** A GGUF-named file the fake server accepts as its model. */
  modelFile(name: string): string;
  stop(): Promise<void>;
}

export async function startHarness(extra: { apiKey?: string } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), "lap-browser-"));
  const configPath = join(dir, "llama-server-config.json");
  writeFileSync(
    configPath,
    JSON.stringify({ host: "127.0.0.1", port: 18000 + Math.floor(Math.random() * 20000), basePath: dir, serverPath: FAKE_SERVER, ctx_size: 2048, batch_size: 512, threads: -1, gpu_layers: 0, loadTimeoutSeconds: 20, stopTimeoutSeconds: 2, metricsIntervalSeconds: 1 }),
  );
  const options = {
    port: 0,
    host: "127.0.0.1",
    dataDir: dir,
    configPath,
    logLevel: "info" as const,
    environment: "test",
    quiet: true,
    databasePath: join(dir, "test.db"),
    // metrics_update twice a second (reference: 10 s) so live chart appends are seen quickly.
    realtime: { metricsIntervalMs: 500 },
    ...extra,
  };
  const server = await startServer(options);
  const harness: Harness = {
    dir,
    server,
    url: server.url,
    async restart() {
      const port = harness.server.server.port!;
      await harness.server.stop();
      harness.server = await startServer({ ...options, port });
    },
    modelFile(name) {
      const p = join(dir, name);
      writeFileSync(p, "GGUF fake model bytes");
      return p;
    },
    async stop() {
      await harness.server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

export interface BrowserSession {
  context: BrowserContext;
  /** Console errors and uncaught exceptions seen on any page. */
  errors: string[];
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

export async function launchBrowser(opts: { colorScheme?: "light" | "dark"; width?: number; height?: number; ignore?: RegExp; javaScriptEnabled?: boolean } = {}): Promise<BrowserSession> {
  const profile = mkdtempSync(join(tmpdir(), "lap-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: opts.width ?? 1280, height: opts.height ?? 900 },
    colorScheme: opts.colorScheme ?? "light",
    javaScriptEnabled: opts.javaScriptEnabled ?? true,
  });
  const errors: string[] = [];
  const watch = (page: Page) => {
    page.on("console", (m) => {
      // A failed resource load names the page only; its location is the resource that failed.
      const where = m.text().startsWith("Failed to load resource") ? ` (${m.location().url})` : "";
      if (m.type() === "error" && !(opts.ignore && opts.ignore.test(m.text()))) errors.push(`${page.url()}: ${m.text()}${where}`);
    });
    page.on("pageerror", (e) => errors.push(`${page.url()}: uncaught ${e.message}`));
  };
  context.pages().forEach(watch);
  context.on("page", watch);
  return {
    context,
    errors,
    newPage: () => context.newPage(),
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
