import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/app";
import { ApiClientError, ApiService } from "../../src/client";
import { metricsMinute } from "../../src/db/schema";
import { minuteOf } from "../../src/metrics/history";
import { startServer, type RunningServer } from "../../src/server";

let dir: string;
let server: RunningServer;
let api: ApiService;
const KEY = "test-key-123";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lap-client-"));
  server = await startServer({
    port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"),
    logLevel: "error", environment: "test", quiet: true, apiKey: KEY,
  });
  api = new ApiService(server.url, { apiKey: KEY });
  // One sample an hour: the collector then writes no minute row while the tests seed history.
  await api.updateConfig({ ...(await api.getConfig()), metricsIntervalSeconds: 3600 });
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("ApiService against a real server", () => {
  test("getConfig / updateConfig round-trip", async () => {
    const cfg = await api.getConfig();
    expect(cfg.port).toBe(8134);
    const saved = await api.updateConfig({ ...cfg, port: 9000, ctx_size: 4096 });
    expect(saved.port).toBe(9000);
    expect((await api.getConfig()).ctx_size).toBe(4096);
  });

  test("invalid config: ApiClientError with the envelope's code and details", async () => {
    const cfg = await api.getConfig();
    const err = await api.updateConfig({ ...cfg, port: 70000 }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiClientError);
    expect(err.code).toBe("VALIDATION_ERROR");
    expect(err.status).toBe(400);
    expect(err.details).toContain("Port must be between 1 and 65535");
  });

  test("getMetrics: the collector's first sample is there at once", async () => {
    const m = await api.getMetrics();
    expect(m.cpu.cores).toBe(navigator.hardwareConcurrency);
    expect(m.memory.total).toBeGreaterThan(0);
    expect(m.requests.total).toBe(0);
  });

  test("getMetricsHistory with defaults and with arguments", async () => {
    const base = minuteOf(Date.now());
    server.services.db.insert(metricsMinute).values([
      { ts: base - 120 * 60_000, samples: 6, cpuAvg: 20, cpuMax: 30, memAvg: 50, memMax: 55, requests: 4, errors: 0, responseTimeAvg: 150 },
      { ts: base - 3 * 60_000, samples: 6, cpuAvg: 40, cpuMax: 60, memAvg: 60, memMax: 65, requests: 2, errors: 1, responseTimeAvg: 300 },
    ]).run();
    const def = await api.getMetricsHistory();
    expect(def.period.resolution).toBe("5m");
    expect(def.summary).toMatchObject({ totalRequests: 6, maxCpu: 40, avgCpu: 30, avgResponseTime: 225 });
    const lastHour = await api.getMetricsHistory(1, "1m");
    expect(lastHour.metrics).toHaveLength(1);
    expect(lastHour.metrics[0]).toMatchObject({ cpu: 40, memory: 60, requests: 2, responseTime: 300 });
    const err = await api.getMetricsHistory(500).catch((e) => e);
    expect(err).toBeInstanceOf(ApiClientError);
    expect(err.code).toBe("VALIDATION_ERROR");
  });

  test("getHealth returns the report even when it is 503 (unhealthy: no llama-server here)", async () => {
    const h = await api.getHealth();
    expect(["healthy", "unhealthy"]).toContain(h.status);
    expect(h.services.proxy.status).toBe("healthy");
    expect(typeof h.system.cpu_usage).toBe("number");
  });

  test("getStatus", async () => {
    const st = await api.getStatus();
    expect(st.application.version).toBe(server.services.version);
    expect(st.server.port).toBe(server.server.port!);
  });

  test("getLogs filters", async () => {
    server.services.log.warn("client test marker");
    const { logs } = await api.getLogs({ level: "warn", q: "client test marker" });
    expect(logs.map((l) => l.message)).toEqual(["client test marker"]);
  });

  test("models: register, list, discover, start, stop, remove through the typed client", async () => {
    const { writeModel } = await import("../fixtures/gguf-writer");
    const { resolve } = await import("node:path");
    const models = join(dir, "models");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(models, { recursive: true });
    writeModel(join(models, "tiny-Q4_K_M.gguf"), { arch: "llama", name: "tiny", fileType: 15, contextLength: 2048 });
    writeModel(join(models, "other-Q8_0.gguf"), { arch: "qwen2", fileType: 7 });
    const cfg = await api.getConfig();
    await api.updateConfig({ ...cfg, serverPath: resolve(import.meta.dir, "../fixtures/fake-llama-server.ts"), host: "127.0.0.1", port: 21000 + Math.floor(Math.random() * 9000) });

    const reg = await api.registerModels([{ name: "tiny", path: join(models, "tiny-Q4_K_M.gguf") }]);
    expect(reg.registered).toBe(1);
    expect(reg.models[0]).toMatchObject({ id: "tiny", family: "llama", quantization: "Q4_K_M", contextSize: 2048 });
    const found = await api.discoverModels([models]);
    expect(found.totalFound).toBe(2);
    const list = await api.getModels();
    expect(list.models.map((m) => m.id).sort()).toEqual(["other-q8_0", "tiny"].sort());
    const started = await api.startModel("tiny");
    expect(started.status).toBe("running");
    expect((await api.getModels()).models.find((m) => m.id === "tiny")!.status).toBe("running");
    const inUse = await api.removeModel("tiny").catch((e) => e);
    expect(inUse).toBeInstanceOf(ApiClientError);
    expect(inUse.code).toBe("CONFLICT");
    await api.stopModel("tiny");
    expect(await api.removeModel("tiny")).toEqual({ modelId: "tiny" });
  });

  test("removeModel of an unknown id throws NOT_FOUND", async () => {
    const err = await api.removeModel("no-such-model").catch((e) => e);
    expect(err).toBeInstanceOf(ApiClientError);
    expect(err.code).toBe("NOT_FOUND");
    expect(err.status).toBe(404);
  });

  test("a wrong API key is an UNAUTHORIZED ApiClientError", async () => {
    const err = await new ApiService(server.url, { apiKey: "wrong" }).getConfig().catch((e) => e);
    expect(err).toBeInstanceOf(ApiClientError);
    expect(err.code).toBe("UNAUTHORIZED");
    expect(err.status).toBe(401);
  });

  test("updateModel: PATCH settings through the typed client; a refused value is a VALIDATION_ERROR", async () => {
    const models = join(dir, "patch-models");
    const { mkdirSync } = await import("node:fs");
    const { writeModel } = await import("../fixtures/gguf-writer");
    mkdirSync(models, { recursive: true });
    writeModel(join(models, "patchme-Q4_K_M.gguf"), { arch: "llama", name: "patchme", fileType: 15, contextLength: 2048 });
    const [m] = (await api.registerModels([{ path: join(models, "patchme-Q4_K_M.gguf") }])).models;
    const saved = await api.updateModel(m!.id, { settings: { ctxSize: 1024, rewrite: { overrides: { temperature: 0 } } } });
    expect(saved.settings).toMatchObject({ ctxSize: 1024, rewrite: { overrides: { temperature: 0 } } });
    const err = await api.updateModel(m!.id, { settings: { rewrite: { strip: ["model"] } } }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiClientError);
    expect(err.code).toBe("VALIDATION_ERROR");
    expect(err.details).toContain("the model parameter cannot be rewritten");
    expect((await api.deleteKvCaches(m!.id)).deleted).toBe(0);
    expect((await api.deleteKvCache(m!.id, "nope").catch((e) => e)).code).toBe("NOT_FOUND");
    await api.removeModel(m!.id);
  });

  test("fetch option: an app's own fetch (in process, no socket) and extra headers on every call", async () => {
    const app = createApp(server.services);
    const seen: Request[] = [];
    const inProcess = new ApiService("http://127.0.0.1", {
      headers: { authorization: `Bearer ${KEY}` },
      fetch: (req) => {
        seen.push(req);
        return app.fetch(req);
      },
    });
    expect((await inProcess.getConfig()).host).toBeTruthy();
    await inProcess.stopModel("no-such-model").catch(() => undefined);
    expect(seen.map((r) => `${r.method} ${new URL(r.url).pathname}`)).toEqual(["GET /api/config", "POST /api/models/no-such-model/stop"]);
    // Bodiless POSTs still say JSON (the request guard requires it); the forwarded key is there.
    expect(seen[1]!.headers.get("content-type")).toBe("application/json");
    expect(seen.every((r) => r.headers.get("authorization") === `Bearer ${KEY}`)).toBe(true);
    const noKey = await new ApiService("http://127.0.0.1", { fetch: app.fetch }).getConfig().catch((e) => e);
    expect(noKey.code).toBe("UNAUTHORIZED");
  });

  test("nothing listening: the fetch error surfaces", async () => {
    const dead = new ApiService("http://127.0.0.1:1");
    await expect(dead.getMetrics()).rejects.toThrow();
  });
});
