import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/app";
import { createServices, shutdownServices, type Services } from "../../src/services";
import { fakeSupervisorOf, fakeSupervisorOverrides, type FakeSupervisor } from "../helpers/fake-supervisor";
import { writeModel } from "../fixtures/gguf-writer";

let dir: string;
let modelsDir: string;
let s: Services;
let app: ReturnType<typeof createApp>;
let supervisor: FakeSupervisor;

function build(databasePath = ":memory:") {
  s = createServices({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath }, fakeSupervisorOverrides);
  supervisor = fakeSupervisorOf(s);
  s.config.update({ ...s.config.get(), basePath: modelsDir });
  app = createApp(s);
}

beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), "models-api-")));
  modelsDir = join(dir, "models");
  mkdirSync(modelsDir);
  writeModel(join(modelsDir, "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf"), { arch: "llama", name: "Mistral 7B Instruct", fileType: 15, contextLength: 32768, size: 4_368_438_944 });
  writeModel(join(modelsDir, "gemma-2-2b-it-Q8_0.gguf"), { arch: "gemma2", name: "Gemma 2 2B", fileType: 7, contextLength: 8192, version: "2.0", size: 2_784_495_200 });
  mkdirSync(join(modelsDir, "split"));
  writeModel(join(modelsDir, "split/big-Q2_K-00001-of-00002.gguf"), { arch: "qwen3", fileType: 10, contextLength: 40960, size: 1000, split: { no: 0, count: 2 } });
  writeModel(join(modelsDir, "split/big-Q2_K-00002-of-00002.gguf"), { arch: "qwen3", size: 500, split: { no: 1, count: 2 } });
  writeFileSync(join(modelsDir, "broken.gguf"), "definitely not gguf");
  build();
});

afterEach(async () => {
  await shutdownServices(s);
  rmSync(dir, { recursive: true, force: true });
});

async function call(method: string, path: string, body?: unknown, raw?: string) {
  const res = await app.request(path, {
    method,
    headers: { "content-type": "application/json" },
    ...(body !== undefined || raw !== undefined ? { body: raw ?? JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as any;
  expect(typeof json.timestamp).toBe("string");
  expect(json.success).toBe(res.status < 400);
  return { status: res.status, json };
}

const mistral = () => join(modelsDir, "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf");
const gemma = () => join(modelsDir, "gemma-2-2b-it-Q8_0.gguf");

describe("GET /api/models", () => {
  test("200 with count and every Model field, status live from the supervisor", async () => {
    expect((await call("GET", "/api/models")).json.data).toEqual({ count: 0, models: [] });
    await call("POST", "/api/models", { models: [{ name: "mistral-7b", description: "Mistral model", path: mistral(), family: "mistral", version: "1.0" }] });
    supervisor.set("mistral-7b", "running");
    const { status, json } = await call("GET", "/api/models");
    expect(status).toBe(200);
    expect(json.data.count).toBe(1);
    expect(json.data.models[0]).toMatchObject({
      id: "mistral-7b",
      name: "mistral-7b",
      description: "Mistral model",
      status: "running",
      version: "1.0",
      path: mistral(),
      size: 4_368_438_944,
      family: "mistral",
      contextSize: 32768,
      loadedAt: "2026-01-01T00:00:00.000Z",
      memoryUsage: 512,
      format: "gguf",
      quantization: "Q4_K_M",
    });
    supervisor.set("mistral-7b", "loading");
    expect((await call("GET", "/api/models")).json.data.models[0].status).toBe("loading");
    supervisor.forget("mistral-7b");
    expect((await call("GET", "/api/models")).json.data.models[0].status).toBe("stopped");
  });

  test("GET /api/models/:id: 200 and 404", async () => {
    await call("POST", "/api/models", { models: [{ path: gemma() }] });
    const one = await call("GET", "/api/models/gemma-2-2b-it-q8_0");
    expect(one.status).toBe(200);
    expect(one.json.data).toMatchObject({ id: "gemma-2-2b-it-q8_0", family: "gemma2", version: "2.0", quantization: "Q8_0" });
    const missing = await call("GET", "/api/models/nope");
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe("NOT_FOUND");
  });
});

describe("POST /api/models", () => {
  test("200 registers one, metadata missing from the request filled from the GGUF header", async () => {
    const { status, json } = await call("POST", "/api/models", { models: [{ name: "Mistral 7B", path: mistral() }] });
    expect(status).toBe(200);
    expect(json.message).toBe("Models registered successfully");
    expect(json.data.registered).toBe(1);
    expect(json.data.models[0]).toMatchObject({
      id: "mistral-7b",
      name: "Mistral 7B",
      description: "Mistral 7B Instruct",
      status: "stopped",
      family: "llama",
      contextSize: 32768,
      format: "gguf",
      quantization: "Q4_K_M",
      size: 4_368_438_944,
    });
  });

  test("registers many at once; a split model gets its total size; settings stored", async () => {
    const { json } = await call("POST", "/api/models", {
      models: [
        { path: gemma(), settings: { ctxSize: 4096, aliases: ["gemma"] } },
        { name: "big", path: join(modelsDir, "split/big-Q2_K-00001-of-00002.gguf") },
      ],
    });
    expect(json.data.registered).toBe(2);
    expect(json.data.models[0].settings).toEqual({ ctxSize: 4096, aliases: ["gemma"] });
    expect(json.data.models[1]).toMatchObject({ id: "big", size: 1500, family: "qwen3", quantization: "Q2_K" });
  });

  test("the real tiny model from build-llama-server.sh registers with its header's metadata", async () => {
    const real = process.env.LLAMA_TEST_MODEL ?? join(homedir(), ".cache/llama-async-proxy/llama.cpp/models/tiny-llama.gguf");
    if (!existsSync(real)) {
      console.warn(`skipping: ${real} not found (run shared/tools/build-llama-server.sh)`);
      return;
    }
    const { status, json } = await call("POST", "/api/models", { models: [{ path: real }] });
    expect(status).toBe(200);
    expect(json.data.models[0]).toMatchObject({ id: "tiny-llama", name: "tiny-llama", description: "tiny-llama-test", family: "llama", contextSize: 2048, format: "gguf", size: statSync(real).size });
  });

  test("relative paths resolve against config.basePath", async () => {
    const { status, json } = await call("POST", "/api/models", { models: [{ path: "gemma-2-2b-it-Q8_0.gguf" }] });
    expect(status).toBe(200);
    expect(json.data.models[0].path).toBe(gemma());
  });

  test("400 with the offending entry when a path does not exist, is a folder or is not GGUF", async () => {
    const cases: [string, string][] = [
      [join(modelsDir, "nope.gguf"), "models[1] (" + join(modelsDir, "nope.gguf") + "): file does not exist"],
      [modelsDir, `models[1] (${modelsDir}): not a regular file`],
      [join(modelsDir, "broken.gguf"), `models[1] (${join(modelsDir, "broken.gguf")}): not a GGUF file (bad magic)`],
      [join(modelsDir, "split/big-Q2_K-00002-of-00002.gguf"), "is part 2 of a split model"],
    ];
    for (const [path, details] of cases) {
      const { status, json } = await call("POST", "/api/models", { models: [{ path: gemma() }, { path }] });
      expect(status).toBe(400);
      expect(json.error.code).toBe("VALIDATION_ERROR");
      expect(json.error.details).toContain(details);
    }
    // Nothing of those requests was registered.
    expect((await call("GET", "/api/models")).json.data.count).toBe(0);
  });

  test("400 for malformed bodies, with the zod issue in details", async () => {
    const bad: [unknown, string][] = [
      [{}, "models"],
      [{ models: [] }, "at least one"],
      [{ models: [{ name: "x" }] }, "path"],
      [{ models: [{ path: gemma(), contextsize: 5 }] }, "contextsize"],
      [{ models: [{ path: gemma(), id: "Not A Slug!" }] }, "id must be lowercase"],
      [{ models: [{ path: gemma(), settings: { threads: 0 } }] }, "threads must be -1"],
      [{ models: "all" }, "models must be an array"],
    ];
    for (const [body, detail] of bad) {
      const { status, json } = await call("POST", "/api/models", body);
      expect(status).toBe(400);
      expect(json.error.code).toBe("VALIDATION_ERROR");
      expect(json.error.details).toContain(detail);
    }
    const malformed = await call("POST", "/api/models", undefined, "{not json");
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.code).toBe("VALIDATION_ERROR");
  });

  test("409 when the id or the path is already registered, and nothing of the request is registered", async () => {
    await call("POST", "/api/models", { models: [{ name: "mistral", path: mistral() }] });
    const samePath = await call("POST", "/api/models", { models: [{ path: gemma() }, { name: "other", path: mistral() }] });
    expect(samePath.status).toBe(409);
    expect(samePath.json.error).toMatchObject({ code: "CONFLICT", message: "Model already exists" });
    expect(samePath.json.error.details).toContain('already registered as "mistral"');
    const sameId = await call("POST", "/api/models", { models: [{ path: gemma() }, { name: "Mistral", path: join(modelsDir, "split/big-Q2_K-00001-of-00002.gguf") }] });
    expect(sameId.status).toBe(409);
    expect(sameId.json.error.details).toContain('id "mistral" is already registered');
    // All or nothing: gemma (valid, first in both requests) was not registered.
    const list = await call("GET", "/api/models");
    expect(list.json.data.models.map((m: any) => m.id)).toEqual(["mistral"]);
  });

  test("409 for duplicates inside one request and for an alias another model uses", async () => {
    const dup = await call("POST", "/api/models", { models: [{ name: "a", path: gemma() }, { name: "b", path: gemma() }] });
    expect(dup.status).toBe(409);
    const dupId = await call("POST", "/api/models", { models: [{ name: "a", path: gemma() }, { name: "a", path: mistral() }] });
    expect(dupId.status).toBe(409);
    await call("POST", "/api/models", { models: [{ name: "gemma", path: gemma() }] });
    const alias = await call("POST", "/api/models", { models: [{ path: mistral(), settings: { aliases: ["GEMMA"] } }] });
    expect(alias.status).toBe(409);
    expect(alias.json.error.details).toContain('"GEMMA" already names model "gemma"');
  });

  test("registering a discovered model adopts it: status leaves 'discovered', no duplicate", async () => {
    await call("POST", "/api/models/discover", {});
    const before = await call("GET", "/api/models/gemma-2-2b-it-q8_0");
    expect(before.json.data.status).toBe("discovered");
    const { status, json } = await call("POST", "/api/models", { models: [{ name: "gemma", path: gemma() }] });
    expect(status).toBe(200);
    expect(json.data.models[0]).toMatchObject({ id: "gemma", status: "stopped", source: "registered" });
    const all = (await call("GET", "/api/models")).json.data.models;
    expect(all.filter((m: any) => m.path === gemma()).length).toBe(1);
  });
});

describe("DELETE /api/models/:id", () => {
  beforeEach(async () => {
    await call("POST", "/api/models", { models: [{ name: "m", path: mistral() }] });
  });

  test("200 removes the entry, never the file", async () => {
    const { status, json } = await call("DELETE", "/api/models/m");
    expect(status).toBe(200);
    expect(json.message).toBe("Model removed successfully");
    expect(json.data).toEqual({ modelId: "m" });
    expect(existsSync(mistral())).toBe(true);
    expect((await call("GET", "/api/models/m")).status).toBe(404);
  });

  test("404 when unknown", async () => {
    const { status, json } = await call("DELETE", "/api/models/unknown");
    expect(status).toBe(404);
    expect(json.error.code).toBe("NOT_FOUND");
  });

  for (const state of ["loading", "running", "stopping"] as const) {
    test(`409 "Model is currently in use" while ${state}`, async () => {
      supervisor.set("m", state);
      const { status, json } = await call("DELETE", "/api/models/m");
      expect(status).toBe(409);
      expect(json.error).toMatchObject({ code: "CONFLICT", message: "Model is currently in use" });
      expect((await call("GET", "/api/models/m")).status).toBe(200);
    });
  }

  test("200 once the model stopped or failed", async () => {
    supervisor.set("m", "error");
    expect((await call("DELETE", "/api/models/m")).status).toBe(200);
  });
});

describe("PATCH /api/models/:id", () => {
  beforeEach(async () => {
    await call("POST", "/api/models", { models: [{ name: "m", path: mistral() }, { name: "g", path: gemma(), settings: { aliases: ["gem"] } }] });
  });

  test("200 merges settings; null removes an override; metadata editable", async () => {
    const first = await call("PATCH", "/api/models/m", {
      description: "mine",
      settings: { ctxSize: 16384, batchSize: 256, threads: 8, gpuLayers: -1, extraArgs: ["--flash-attn", "on"], aliases: ["mistral", "m7b"], autoStart: true, idleTimeoutSeconds: 600 },
    });
    expect(first.status).toBe(200);
    expect(first.json.message).toBe("Model updated successfully");
    expect(first.json.data.description).toBe("mine");
    const second = await call("PATCH", "/api/models/m", { settings: { ctxSize: null, threads: 4 } });
    expect(second.json.data.settings).toEqual({ batchSize: 256, threads: 4, gpuLayers: -1, extraArgs: ["--flash-attn", "on"], aliases: ["mistral", "m7b"], autoStart: true, idleTimeoutSeconds: 600 });
    // Aliases make the model resolvable by those names.
    expect(s.registry.resolve("m7b")?.id).toBe("m");
  });

  test("400 for invalid settings, each with a clear message", async () => {
    const bad: [unknown, string][] = [
      [{ settings: { extraArgs: "--flash-attn on" } }, "extraArgs must be an array of strings"],
      [{ settings: { extraArgs: ["ok", 5] } }, "extraArgs must be an array of strings"],
      [{ settings: { ctxSize: -1 } }, "ctxSize must be between 0 and 4194304"],
      [{ settings: { gpuLayers: 1.5 } }, "gpuLayers must be a whole number"],
      [{ settings: { idleTimeoutSeconds: 99999999 } }, "idleTimeoutSeconds must be between"],
      [{ settings: { aliases: ["a", "A"] } }, "aliases must not repeat"],
      [{ settings: { aliases: ["has space"] } }, "whitespace"],
      [{ settings: { autoStart: "yes" } }, "autoStart must be true or false"],
      [{ settings: { ctx_size: 4096 } }, "ctx_size"],
      [{}, "Nothing to change"],
    ];
    for (const [body, detail] of bad) {
      const { status, json } = await call("PATCH", "/api/models/m", body);
      expect(status).toBe(400);
      expect(json.error.code).toBe("VALIDATION_ERROR");
      expect(json.error.details).toContain(detail);
    }
  });

  test("409 when an alias names another model; 404 when unknown", async () => {
    for (const taken of ["gem", "g", "G"]) {
      const { status, json } = await call("PATCH", "/api/models/m", { settings: { aliases: [taken] } });
      expect(status).toBe(409);
      expect(json.error.details).toContain('already names model "g"');
    }
    // Its own names are fine.
    expect((await call("PATCH", "/api/models/g", { settings: { aliases: ["gem", "g2"] } })).status).toBe(200);
    expect((await call("PATCH", "/api/models/zzz", { name: "x" })).status).toBe(404);
  });
});

describe("POST /api/models/discover", () => {
  test("200 with the reference's fields; discovered models listed with status 'discovered'", async () => {
    const { status, json } = await call("POST", "/api/models/discover", { paths: [modelsDir], recursive: true, includePatterns: ["*.gguf"], excludePatterns: ["*.tmp"] });
    expect(status).toBe(200);
    expect(json.data.scannedPaths).toEqual([modelsDir]);
    expect(json.data.totalFound).toBe(3);
    const byPath = Object.fromEntries(json.data.discovered.map((m: any) => [m.path, m]));
    expect(byPath[mistral()]).toMatchObject({ name: "Mistral-7B-Instruct-v0.3-Q4_K_M", status: "discovered", family: "llama", quantization: "Q4_K_M", contextSize: 32768, format: "gguf" });
    expect(byPath[join(modelsDir, "split/big-Q2_K-00001-of-00002.gguf")]).toMatchObject({ name: "big-Q2_K", size: 1500 });
    expect(json.data.skipped).toEqual([{ path: join(modelsDir, "broken.gguf"), reason: "not a GGUF file (bad magic)" }]);
    const list = await call("GET", "/api/models");
    expect(list.json.data.count).toBe(3);
    expect(list.json.data.models.every((m: any) => m.status === "discovered")).toBe(true);
  });

  test("defaults to config.basePath; rescans update in place and mark vanished files missing", async () => {
    // A POST without any body means "all defaults" too.
    const bare = await app.request("/api/models/discover", { method: "POST", headers: { "content-type": "application/json" } });
    expect(bare.status).toBe(200);
    expect(((await bare.json()) as any).data.totalFound).toBe(3);
    const first = await call("POST", "/api/models/discover", {});
    expect(first.json.data.scannedPaths).toEqual([modelsDir]);
    expect(first.json.data.added).toEqual([]); // the bare call added them; this one only updates
    const ids = first.json.data.discovered.map((m: any) => m.id).sort();
    // A model grows (re-downloaded), another disappears.
    writeModel(gemma(), { arch: "gemma2", name: "Gemma 2 2B", fileType: 1, contextLength: 8192, size: 5_000_000_000 });
    renameSync(mistral(), join(dir, "moved-away.gguf"));
    const second = await call("POST", "/api/models/discover", {});
    expect(second.json.data.missing).toEqual(["mistral-7b-instruct-v0.3-q4_k_m"]);
    const list = (await call("GET", "/api/models")).json.data.models;
    expect(list.map((m: any) => m.id).sort()).toEqual(ids);
    const g = list.find((m: any) => m.path === gemma());
    expect(g).toMatchObject({ size: 5_000_000_000, quantization: "F16" });
    const gone = list.find((m: any) => m.id === "mistral-7b-instruct-v0.3-q4_k_m");
    expect(gone).toMatchObject({ missing: true, statusDetail: "file missing" });
    // It comes back: no longer missing, same id.
    renameSync(join(dir, "moved-away.gguf"), mistral());
    await call("POST", "/api/models/discover", {});
    expect((await call("GET", "/api/models/mistral-7b-instruct-v0.3-q4_k_m")).json.data.missing).toBeUndefined();
  });

  test("a registered model found by a scan keeps its id, name and status", async () => {
    await call("POST", "/api/models", { models: [{ name: "mine", path: mistral(), family: "mistral" }] });
    const { json } = await call("POST", "/api/models/discover", {});
    const m = json.data.discovered.find((x: any) => x.path === mistral());
    expect(m).toMatchObject({ id: "mine", name: "mine", family: "mistral", status: "stopped" });
    expect((await call("GET", "/api/models")).json.data.count).toBe(3);
  });

  test("a discovered model that runs becomes registered", async () => {
    await call("POST", "/api/models/discover", {});
    s.bus.emit("model.status", { modelId: "gemma-2-2b-it-q8_0", status: "running", previous: "loading", at: new Date().toISOString() });
    expect((await call("GET", "/api/models/gemma-2-2b-it-q8_0")).json.data).toMatchObject({ source: "registered", status: "stopped" });
  });

  test("400 VALIDATION_ERROR naming a path that does not exist or is not a folder", async () => {
    const nowhere = join(dir, "nowhere");
    const a = await call("POST", "/api/models/discover", { paths: [modelsDir, nowhere] });
    expect(a.status).toBe(400);
    expect(a.json.error).toMatchObject({ code: "VALIDATION_ERROR", message: "Invalid paths", details: `${nowhere} does not exist` });
    const b = await call("POST", "/api/models/discover", { paths: [gemma()] });
    expect(b.status).toBe(400);
    expect(b.json.error.details).toBe(`${gemma()} is not a directory`);
    for (const body of [{ paths: [] }, { paths: "x" }, { recursive: "yes" }, { includePatterns: [""] }, { paths: [modelsDir], extra: 1 }]) {
      const r = await call("POST", "/api/models/discover", body);
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe("VALIDATION_ERROR");
    }
    expect((await call("GET", "/api/models")).json.data.count).toBe(0);
  });

  test("an unreadable entry is reported in skipped, never a 500", async () => {
    Bun.spawnSync(["mkfifo", join(modelsDir, "pipe.gguf")]);
    const { status, json } = await call("POST", "/api/models/discover", {});
    expect(status).toBe(200);
    expect(json.data.skipped).toContainEqual({ path: join(modelsDir, "pipe.gguf"), reason: "a FIFO, not a model file" });
  });
});

describe("persistence", () => {
  test("the registry survives a restart (file database)", async () => {
    await shutdownServices(s);
    const dbPath = join(dir, "data", "registry.db");
    build(dbPath);
    await call("POST", "/api/models", { models: [{ name: "m", path: mistral(), settings: { aliases: ["mm"] } }] });
    await call("POST", "/api/models/discover", {});
    await shutdownServices(s);
    build(dbPath);
    const list = (await call("GET", "/api/models")).json.data.models;
    expect(list.map((m: any) => [m.id, m.status])).toEqual([
      ["big-q2_k", "discovered"],
      ["gemma-2-2b-it-q8_0", "discovered"],
      ["m", "stopped"],
    ]);
    expect(list.find((m: any) => m.id === "m").settings).toEqual({ aliases: ["mm"] });
  });
});

describe("edge cases found in review", () => {
  test("PATCH refuses extraArgs that set what the supervisor chooses (they could never start)", async () => {
    await call("POST", "/api/models", { models: [{ name: "m", path: join(modelsDir, "gemma-2-2b-it-Q8_0.gguf") }] });
    for (const args of [["--port", "1234"], ["-m", "/etc/passwd"], ["--host=0.0.0.0"], ["--alias", "x"]]) {
      const r = await call("PATCH", "/api/models/m", { settings: { extraArgs: args } });
      expect(r.status).toBe(400);
      expect(r.json.error.details).toContain(`extraArgs may not set ${args[0]!.split("=")[0]}`);
    }
    const ok = await call("PATCH", "/api/models/m", { settings: { extraArgs: ["--flash-attn", "on", "-np", "2"] } });
    expect(ok.status).toBe(200);
  });

  test("PATCH names the length limit of a too long description", async () => {
    await call("POST", "/api/models", { models: [{ name: "m", path: join(modelsDir, "gemma-2-2b-it-Q8_0.gguf") }] });
    const r = await call("PATCH", "/api/models/m", { description: "d".repeat(2001) });
    expect(r.status).toBe(400);
    expect(r.json.error.details).toContain("description must be at most 2000 characters");
  });

  test("a model reached again through a linked folder is not registered twice", async () => {
    await call("POST", "/api/models/discover", { paths: [modelsDir] });
    const before = (await call("GET", "/api/models")).json.data.count;
    const { symlinkSync } = await import("node:fs");
    const other = join(dir, "elsewhere");
    mkdirSync(other);
    symlinkSync(modelsDir, join(other, "link-to-models"));
    const r = await call("POST", "/api/models/discover", { paths: [other] });
    expect(r.status).toBe(200);
    expect((await call("GET", "/api/models")).json.data.count).toBe(before);
  });

  test("kernel pseudo filesystems are not scanned", async () => {
    const r = await call("POST", "/api/models/discover", { paths: ["/proc"] });
    expect(r.status).toBe(200);
    expect(r.json.data.totalFound).toBe(0);
    expect(r.json.data.skipped).toContainEqual({ path: "/proc", reason: "kernel pseudo filesystem, not scanned" });
  });

  test("a body that is not JSON is named as such", async () => {
    const res = await app.request("/api/models", { method: "POST", headers: { "content-type": "text/plain" }, body: "models=1" });
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.error.code).toBe("VALIDATION_ERROR");
    expect(body.error.details).toContain("must be JSON");
  });
});
