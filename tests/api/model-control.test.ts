import { afterEach, describe, expect, test } from "bun:test";
import { createApp } from "../../src/app";
import { makeHarness, processesMentioning, waitFor, type Harness } from "../fixtures/supervisor-harness";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function call(harness: Harness, method: string, path: string) {
  const res = await createApp(harness.services).request(path, { method, headers: { "content-type": "application/json" } });
  return { status: res.status, body: (await res.json()) as any };
}

describe("POST /api/models/:id/start", () => {
  test("answers once the model runs, with the live Model", async () => {
    h = await makeHarness();
    h.addModel("m1");
    const { status, body } = await call(h, "POST", "/api/models/m1/start");
    expect(status).toBe(200);
    expect(body.success).toBe(true);
    expect(body.data).toMatchObject({ id: "m1", status: "running" });
    expect(body.data.port).toBeGreaterThan(0);
    expect(Date.parse(body.data.loadedAt)).not.toBeNaN();
    expect(body.data.memoryUsage).toBeGreaterThan(0);
    expect(Date.parse(body.timestamp)).not.toBeNaN();
    expect((await fetch(`http://127.0.0.1:${body.data.port}/health`)).status).toBe(200);
  });

  test("?wait=false answers 202 at once with status loading; the model comes up afterwards", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-load-ms", "400"] });
    const { status, body } = await call(h, "POST", "/api/models/m1/start?wait=false");
    expect(status).toBe(202);
    expect(body.data.status).toBe("loading");
    await waitFor(() => h!.supervisor.runtimeOf("m1")?.state === "running", "the model to run");
  });

  test("unknown model: 404 envelope, nothing spawned", async () => {
    h = await makeHarness();
    const { status, body } = await call(h, "POST", "/api/models/ghost/start");
    expect(status).toBe(404);
    expect(body).toMatchObject({ success: false, error: { code: "NOT_FOUND", message: "Model not found" } });
    expect(processesMentioning(h.dir)).toEqual([]);
  });

  test("bad wait value: 400 VALIDATION_ERROR", async () => {
    h = await makeHarness();
    h.addModel("m1");
    const { status, body } = await call(h, "POST", "/api/models/m1/start?wait=maybe");
    expect(status).toBe(400);
    expect(body.error.code).toBe("VALIDATION_ERROR");
    expect(body.error.details).toContain("wait must be true or false");
  });

  test("missing binary: 503 with the reason; the model then shows error with that reason", async () => {
    h = await makeHarness({ config: { serverPath: "/nope/llama-server" } });
    h.addModel("m1");
    const { status, body } = await call(h, "POST", "/api/models/m1/start");
    expect(status).toBe(503);
    expect(body.error.code).toBe("SERVICE_UNAVAILABLE");
    expect(body.error.message).toContain("/nope/llama-server does not exist");
    const stop = await call(h, "POST", "/api/models/m1/stop");
    expect(stop.status).toBe(200);
  });

  test("load failure: 503 with the llama-server log tail in details", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-fail-load"] });
    const { status, body } = await call(h, "POST", "/api/models/m1/start");
    expect(status).toBe(503);
    expect(body.error.message).toContain("exit code 1");
    expect(body.error.details).toContain("failed to load model");
  });
});

describe("POST /api/models/:id/stop", () => {
  test("stops a running model and is idempotent", async () => {
    h = await makeHarness();
    h.addModel("m1");
    await call(h, "POST", "/api/models/m1/start");
    const first = await call(h, "POST", "/api/models/m1/stop");
    expect(first.status).toBe(200);
    expect(first.body.data.status).toBe("stopped");
    expect(first.body.data.port).toBeUndefined();
    expect(processesMentioning(h.dir)).toEqual([]);
    const again = await call(h, "POST", "/api/models/m1/stop");
    expect(again.status).toBe(200);
    expect(again.body.data.status).toBe("stopped");
  });

  test("unknown model: 404", async () => {
    h = await makeHarness();
    const { status, body } = await call(h, "POST", "/api/models/ghost/stop");
    expect(status).toBe(404);
    expect(body.error.code).toBe("NOT_FOUND");
  });
});

describe("health and status reflect the supervisor", () => {
  test("llama_server is idle, then healthy with the running model's port, models_loaded and a fresh check", async () => {
    h = await makeHarness();
    h.addModel("m1");
    const idle = await call(h, "GET", "/api/health");
    expect(idle.body.data.services.llama_server).toMatchObject({ status: "idle", models_loaded: 0 });
    const started = await call(h, "POST", "/api/models/m1/start");
    const before = Date.now();
    const healthy = await call(h, "GET", "/api/health");
    const llama = healthy.body.data.services.llama_server;
    expect(healthy.status).toBe(200);
    expect(llama).toMatchObject({ status: "healthy", models_loaded: 1, port: started.body.data.port });
    expect(Date.parse(llama.last_health_check)).toBeLessThanOrEqual(before);
    const status = await call(h, "GET", "/api/status");
    expect(status.body.data.models).toEqual({ registered: 1, loaded: 1, loading: 0, failed: 0 });
  });

  test("a failed model makes llama_server unhealthy (503) and counts as failed", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-fail-load"] });
    await call(h, "POST", "/api/models/m1/start");
    const health = await call(h, "GET", "/api/health");
    expect(health.status).toBe(503);
    expect(health.body.data.services.llama_server.status).toBe("unhealthy");
    expect(health.body.data.services.llama_server.message).toContain("m1: llama-server exited while loading");
    const status = await call(h, "GET", "/api/status");
    expect(status.body.data.models).toMatchObject({ registered: 1, loaded: 0, failed: 1 });
  });

  test("a loading model shows as loading", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-hang"] });
    await call(h, "POST", "/api/models/m1/start?wait=false");
    await waitFor(() => h!.supervisor.runtimeOf("m1")?.state === "loading", "loading");
    const health = await call(h, "GET", "/api/health");
    expect(health.body.data.services.llama_server.status).toBe("loading");
    const status = await call(h, "GET", "/api/status");
    expect(status.body.data.models.loading).toBe(1);
  });
});
