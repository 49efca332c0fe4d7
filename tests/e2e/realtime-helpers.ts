import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RealtimeOptions } from "../../src/realtime/types";
import { startServer, type RunningServer } from "../../src/server";
import type { RuntimeOptions, ServiceOverrides, Services } from "../../src/services";

import { waitFor as poll } from "../helpers/services";

export { FakeSupervisor, fakeSupervisorOf, fakeSupervisorOverrides } from "../helpers/fake-supervisor";

/** Polls `condition` until it holds (never a fixed sleep); realtime suites wait 5 s by default. */
export const waitFor = <T>(condition: () => T | undefined | null | false, what: string, timeoutMs = 5000) => poll(condition, what, timeoutMs, 5);

/** Intervals small enough for tests; each test overrides what it exercises. */
export const FAST: Partial<RealtimeOptions> = {
  metricsIntervalMs: 200,
  modelsIntervalMs: 60_000,
  logsIntervalMs: 60_000,
  logsBatchMs: 50,
};

export interface TestServer extends RunningServer {
  wsUrl: string;
  dir: string;
  cleanup(): Promise<void>;
}

export async function startTestServer(realtime: Partial<RealtimeOptions> = {}, extra: Partial<RuntimeOptions> = {}, dir?: string, overrides: ServiceOverrides = {}): Promise<TestServer> {
  const dataDir = dir ?? mkdtempSync(join(tmpdir(), "lap-rt-"));
  const running = await startServer({
    port: 0,
    host: "127.0.0.1",
    dataDir,
    configPath: join(dataDir, "llama-server-config.json"),
    logLevel: "debug",
    environment: "test",
    quiet: true,
    databasePath: ":memory:",
    realtime: { ...FAST, ...realtime },
    ...extra,
  }, overrides);
  // Start-up work logs a line of its own (the basePath scan); let it land before tests count lines.
  await running.startupDone;
  return {
    ...running,
    dir: dataDir,
    wsUrl: `${running.url.replace(/^http/, "ws")}/llamaproxws`,
    async cleanup() {
      await running.stop();
      if (!dir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface WsMessage {
  type: string;
  data: any;
  timestamp: number;
  requestId?: string | number;
}

/** The global WebSocket, with every message kept so tests can await the one they expect. */
export class PlainClient {
  readonly messages: WsMessage[] = [];
  closed?: { code: number; reason: string };
  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (e) => this.messages.push(JSON.parse(String(e.data)));
    ws.onclose = (e) => (this.closed = { code: e.code, reason: e.reason });
  }

  static async connect(url: string, protocols?: string[]): Promise<PlainClient> {
    const ws = new WebSocket(url, protocols);
    const client = new PlainClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), { once: true });
    });
    return client;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** The first message (at or after index `from`) matching `match`, awaited. */
  async next(match: (m: WsMessage) => boolean, what: string, from = 0, timeoutMs = 5000): Promise<WsMessage> {
    return waitFor(() => this.messages.slice(from).find(match), what, timeoutMs);
  }

  of(type: string): WsMessage[] {
    return this.messages.filter((m) => m.type === type);
  }

  /** Sends and awaits the reply carrying the same requestId. */
  async request(message: { type: string; data?: unknown }, requestId: string = crypto.randomUUID()): Promise<WsMessage> {
    const from = this.messages.length;
    this.send({ ...message, requestId, timestamp: Date.now() });
    return this.next((m) => m.requestId === requestId, `reply to ${message.type} ${requestId}`, from);
  }

  close(): void {
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close();
  }
}

export function registerModel(s: Services, id: string): void {
  s.registry.insert([{ id, name: id, path: `/models/${id}.gguf`, size: 1234, family: "llama" }]);
}
