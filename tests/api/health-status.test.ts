import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json";
import { ISO_RE, jsonRequest, makeTestServices, type TestContext } from "../helpers/services";

let t: TestContext;
beforeEach(() => (t = makeTestServices()));
afterEach(() => t.cleanup());

/** An executable standing in for llama-server: it answers --version as llama-server does. */
function executable(name: string): string {
  const p = join(t.dir, name);
  writeFileSync(p, '#!/bin/sh\necho "version: 1 (abc1234)" >&2\necho "built with cc for x86_64-linux-gnu" >&2\n');
  chmodSync(p, 0o755);
  return p;
}

async function setServerPath(serverPath: string) {
  const cfg = t.services.config.get();
  const res = await t.app.request("/api/config", jsonRequest("POST", { ...cfg, serverPath }));
  expect(res.status).toBe(200);
}

/** A serverPath the API would refuse, as a hand-edited config file can still hold one. */
function configFileServerPath(serverPath: string) {
  t.services.config.update({ ...t.services.config.get(), serverPath });
}

describe("GET /api/health", () => {
  test("has every field of the reference, and is 503 'not available' without llama-server", async () => {
    configFileServerPath(join(t.dir, "no-such-llama-server"));
    const res = await t.app.request("/api/health");
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body.success).toBe(true);
    expect(body.timestamp).toMatch(ISO_RE);
    const d = body.data;
    expect(d.status).toBe("unhealthy");
    expect(d.timestamp).toMatch(ISO_RE);
    expect(d.services.proxy).toEqual({ status: "healthy", uptime: expect.any(Number), version: pkg.version });
    expect(d.services.llama_server).toMatchObject({
      status: "not available",
      host: "localhost",
      port: 8134,
      models_loaded: 0,
    });
    expect(d.services.llama_server.message).toContain("llama-server not found");
    expect(typeof d.services.llama_server.last_health_check === "string" || d.services.llama_server.last_health_check === null).toBe(true);
    for (const k of ["cpu_usage", "memory_usage", "disk_usage"]) {
      expect(typeof d.system[k]).toBe("number");
      expect(d.system[k]).toBeGreaterThanOrEqual(0);
      expect(d.system[k]).toBeLessThanOrEqual(100);
    }
  });

  test("a non-executable serverPath is named as such", async () => {
    const p = join(t.dir, "llama-server");
    writeFileSync(p, "not a program");
    chmodSync(p, 0o644);
    configFileServerPath(p);
    const d = (await (await t.app.request("/api/health")).json()).data;
    // root can read anything but still needs an x bit to execute
    expect(d.services.llama_server.message).toContain("not executable");
  });

  test("is 200 healthy when the configured llama-server exists and nothing has failed", async () => {
    await setServerPath(executable("llama-server"));
    const res = await t.app.request("/api/health");
    expect(res.status).toBe(200);
    const d = (await res.json()).data;
    expect(d.status).toBe("healthy");
    expect(d.services.llama_server.status).not.toBe("not available");
  });
});

describe("GET /api/status", () => {
  test("has every field of the reference with the right types", async () => {
    const res = await t.app.request("/api/status");
    expect(res.status).toBe(200);
    const { data, timestamp, success } = await res.json();
    expect(success).toBe(true);
    expect(timestamp).toMatch(ISO_RE);
    expect(data.application).toEqual({
      name: "Llama Async Proxy",
      version: pkg.version,
      environment: "test",
      uptime: expect.any(Number),
      start_time: expect.stringMatching(ISO_RE),
    });
    expect(data.server).toEqual({ port: expect.any(Number), host: "127.0.0.1", ssl: false, cors_enabled: false });
    expect(Object.keys(data.websocket).sort()).toEqual(["active_connections", "connected_clients", "messages_per_second"]);
    expect(Object.keys(data.models).sort()).toEqual(["failed", "loaded", "loading", "registered"]);
    expect(Object.keys(data.performance).sort()).toEqual(["average_response_time", "error_rate", "requests_active", "requests_total"]);
    for (const group of ["websocket", "models", "performance"]) {
      for (const v of Object.values(data[group])) expect(typeof v).toBe("number");
    }
  });

  test("performance counts come from the request statistics", async () => {
    const a = t.services.requests.begin(null, "/v1/chat/completions");
    a.end({ status: 200 });
    const b = t.services.requests.begin(null, "/v1/chat/completions");
    b.end({ status: 500 });
    const open = t.services.requests.begin(null, "/v1/completions");
    const p = (await (await t.app.request("/api/status")).json()).data.performance;
    expect(p.requests_total).toBe(2);
    expect(p.requests_active).toBe(1);
    expect(p.error_rate).toBe(0.5);
    open.end({ status: 200 });
  });
});

describe("errors", () => {
  test("unknown /api routes answer the NOT_FOUND envelope", async () => {
    for (const [method, path] of [["GET", "/api/nope"], ["POST", "/api/config/extra"], ["DELETE", "/api/health"]] as const) {
      const res = await t.app.request(path, { method, headers: { "content-type": "application/json" } });
      expect(res.status).toBe(404);
      const body = await res.json();
      expect(body).toEqual({ success: false, error: { code: "NOT_FOUND", message: "Resource not found", details: `${method} ${path} does not exist` }, timestamp: expect.stringMatching(ISO_RE) });
    }
  });

  test("an unhandled error is a 500 INTERNAL_ERROR envelope, logged, with no stack trace leaked", async () => {
    t.app.get("/api/__boom", () => {
      throw new Error("secret internal detail at /home/x/file.ts:12");
    });
    const res = await t.app.request("/api/__boom");
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toContain("secret internal detail");
    expect(text).not.toContain("file.ts");
    expect(JSON.parse(text).error.code).toBe("INTERNAL_ERROR");
    const logged = t.services.logs.query({ level: "error" });
    expect(logged.some((e) => e.message.includes("secret internal detail"))).toBe(true);
  });

  test("an API key, when configured, is required on /api", async () => {
    const k = makeTestServices({ apiKey: "s3cret-key-123" });
    try {
      expect((await k.app.request("/api/status")).status).toBe(401);
      expect((await k.app.request("/api/status", { headers: { authorization: "Bearer wrong-key-123" } })).status).toBe(401);
      expect((await k.app.request("/api/status", { headers: { authorization: "Bearer s3cret-key-123" } })).status).toBe(200);
      expect((await k.app.request("/api/status", { headers: { "x-api-key": "s3cret-key-123" } })).status).toBe(200);
    } finally {
      await k.cleanup();
    }
  });
});
