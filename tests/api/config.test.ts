import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { FAKE_LLAMA_SERVER } from "../helpers/services";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { ISO_RE, jsonRequest, makeTestServices, type TestContext } from "../helpers/services";

const VALID = {
  host: "localhost",
  port: 8134,
  basePath: "/models",
  serverPath: FAKE_LLAMA_SERVER,
  ctx_size: 8192,
  batch_size: 512,
  threads: -1,
  gpu_layers: -1,
};

let t: TestContext;
beforeEach(() => (t = makeTestServices()));
afterEach(() => t.cleanup());

const post = (body: unknown) => t.app.request("/api/config", jsonRequest("POST", body));

describe("GET /api/config", () => {
  test("answers the reference defaults in the envelope when no file exists", async () => {
    const res = await t.app.request("/api/config");
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.success).toBe(true);
    expect(body.timestamp).toMatch(ISO_RE);
    expect(body.data).toMatchObject({ host: "localhost", port: 8134, ctx_size: 8192, batch_size: 512, threads: -1, gpu_layers: -1 });
    expect(typeof body.data.basePath).toBe("string");
    expect(typeof body.data.serverPath).toBe("string");
    expect(existsSync(t.services.config.path)).toBe(false);
  });
});

describe("POST /api/config", () => {
  test("saves a valid configuration and answers as the reference", async () => {
    const res = await post(VALID);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ success: true, message: "Configuration updated successfully", data: VALID });
    expect(body.timestamp).toMatch(ISO_RE);
    const onDisk = JSON.parse(readFileSync(t.services.config.path, "utf8"));
    expect(onDisk).toMatchObject(VALID);
    const again = await (await t.app.request("/api/config")).json();
    expect(again.data).toMatchObject(VALID);
  });

  test("keeps extra settings that the body leaves out, and validates those it sets", async () => {
    await post({ ...VALID, maxLoadedModels: 3 });
    const res = await post({ ...VALID, port: 9000 });
    expect((await res.json()).data).toMatchObject({ port: 9000, maxLoadedModels: 3 });
    const bad = await post({ ...VALID, maxLoadedModels: -1 });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.details).toContain("maxLoadedModels must be between 0 and 64");
  });

  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["port above range", { port: 70000 }, "Port must be between 1 and 65535"],
    ["port zero", { port: 0 }, "Port must be between 1 and 65535"],
    ["port not a number", { port: "8134" }, "Port must be a number"],
    ["port fractional", { port: 80.5 }, "Port must be a whole number"],
    ["empty host", { host: "" }, "Host must not be empty"],
    ["host with scheme", { host: "http://x" }, "Host must be a hostname or an IP address"],
    ["empty serverPath", { serverPath: " " }, "serverPath must not be empty"],
    ["negative ctx_size", { ctx_size: -5 }, "ctx_size must be between 0 and 4194304"],
    ["zero batch_size", { batch_size: 0 }, "batch_size must be between 1 and 1048576"],
    ["threads -2", { threads: -2 }, "threads must be -1 (auto) or between 1 and 1024"],
    ["threads 0", { threads: 0 }, "threads must be -1 (auto) or between 1 and 1024"],
    ["gpu_layers -3", { gpu_layers: -3 }, "gpu_layers must be -1 (all) or between 0 and 100000"],
    ["basePath not a string", { basePath: 5 }, "basePath must be a string"],
    ["unknown field", { colour: "red" }, "colour"],
    ["NUL in basePath", { basePath: "/tmp/\u0000x" }, "basePath must not contain NUL"],
  ];
  for (const [name, patch, detail] of cases) {
    test(`400 VALIDATION_ERROR for ${name}, file untouched`, async () => {
      const res = await post({ ...VALID, ...patch });
      expect(res.status).toBe(400);
      const body = await res.json();
      expect(body.success).toBe(false);
      expect(body.error.code).toBe("VALIDATION_ERROR");
      expect(body.error.message).toBe("Invalid configuration data");
      expect(body.error.details).toContain(detail);
      expect(body.timestamp).toMatch(ISO_RE);
      expect(existsSync(t.services.config.path)).toBe(false);
    });
  }

  test("400 for each missing reference field", async () => {
    for (const key of Object.keys(VALID)) {
      const partial: Record<string, unknown> = { ...VALID };
      delete partial[key];
      const res = await post(partial);
      expect(res.status).toBe(400);
      const body = await res.json();
      expect(body.error.details.toLowerCase()).toContain(`${key.toLowerCase() === "host" ? "host" : key.toLowerCase()} is required`);
    }
  });

  test("400 for malformed JSON and for a non-object body", async () => {
    const bad = await post("{not json");
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe("VALIDATION_ERROR");
    const arr = await post([1, 2]);
    expect(arr.status).toBe(400);
    expect((await arr.json()).error.code).toBe("VALIDATION_ERROR");
  });

  test("413 for a body over the size limit (the same rule as /v1)", async () => {
    const res = await post({ ...VALID, basePath: "x".repeat(2 * 1024 * 1024) });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", message: "Request body too large" });
  });
});

describe("a corrupt configuration file", () => {
  test("is reported in /api/health, served as defaults, and kept until a valid POST", async () => {
    const path = t.services.config.path;
    writeFileSync(path, '{"host": "localhost", "port": ');
    const t2 = makeTestServices({ configPath: path });
    try {
      const health = await t2.app.request("/api/health");
      expect(health.status).toBe(503);
      const hb = await health.json();
      expect(hb.data.status).toBe("unhealthy");
      expect(hb.data.services.config.status).toBe("unhealthy");
      expect(hb.data.services.config.message).toContain("not valid JSON");
      const cfg = await (await t2.app.request("/api/config")).json();
      expect(cfg.data.port).toBe(8134);
      expect(readFileSync(path, "utf8")).toBe('{"host": "localhost", "port": ');
      expect(t2.services.logs.query({ level: "error" }).some((e) => e.message.includes("is invalid"))).toBe(true);

      const saved = await t2.app.request("/api/config", jsonRequest("POST", VALID));
      expect(saved.status).toBe(200);
      expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject(VALID);
      const after = await (await t2.app.request("/api/health")).json();
      expect(after.data.services.config.status).toBe("healthy");
    } finally {
      await t2.cleanup();
    }
  });

  test("a file with out-of-range values is reported too", async () => {
    const path = t.services.config.path;
    writeFileSync(path, JSON.stringify({ ...VALID, port: 99999 }));
    const t2 = makeTestServices({ configPath: path });
    try {
      expect(t2.services.config.loadError).toContain("Port must be between 1 and 65535");
    } finally {
      await t2.cleanup();
    }
  });
});
