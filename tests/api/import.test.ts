import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeModel } from "../fixtures/gguf-writer";
import { jsonRequest, makeTestServices, type TestContext } from "../helpers/services";

const FIXTURES = join(import.meta.dir, "../fixtures/llama-swap");
const exampleYaml = readFileSync(join(FIXTURES, "config.example.yaml"), "utf8");

let t: TestContext;
let models: string;
beforeEach(() => {
  t = makeTestServices();
  models = mkdtempSync(join(tmpdir(), "lap-import-"));
  t.services.config.update({ ...t.services.config.get(), basePath: models });
});
afterEach(async () => {
  await t.cleanup();
  rmSync(models, { recursive: true, force: true });
});

const post = (body: unknown) => t.app.request("/api/import/llama-swap", jsonRequest("POST", body));

test("dry run: the plan, nothing registered, nothing changed", async () => {
  const res = await post({ yaml: exampleYaml, dryRun: true });
  expect(res.status).toBe(200);
  const body = await res.json();
  expect(body.success).toBe(true);
  expect(body.data.dryRun).toBe(true);
  expect(body.data.models.map((m: { id: string }) => m.id)).toEqual(["gpt-oss-120b"]);
  expect(body.data.models[0].path).toBe(join(models, "path/to/gpt-oss-120B.gguf"));
  expect(body.data.notImported.find((n: { item: string }) => n.item === "models.docker-llama").reason).toContain("container");
  expect(t.services.registry.list()).toEqual([]);
  expect(t.services.config.get().loadTimeoutSeconds).toBe(120);
});

test("import registers the model with its settings; a second import reports it instead of duplicating it", async () => {
  mkdirSync(join(models, "path/to"), { recursive: true });
  writeModel(join(models, "path/to/gpt-oss-120B.gguf"), { arch: "gpt-oss", name: "gpt-oss" });
  const res = await post({ yaml: exampleYaml });
  expect(res.status).toBe(200);
  const body = await res.json();
  expect(body.data.registered).toEqual([{ id: "gpt-oss-120b", from: "gpt-oss-120b", path: join(models, "path/to/gpt-oss-120B.gguf") }]);
  expect(body.data.failed).toEqual([]);
  const row = t.services.registry.get("gpt-oss-120b")!;
  expect(row.name).toBe("gpt-oss 120B");
  expect(row.settings.ctxSize).toBe(16384);
  expect(row.settings.aliases).toEqual(["gpt-4o-mini"]);
  expect(row.settings.rewrite).toEqual({ strip: ["temperature", "top_k", "top_p"], overrides: { temperature: 0.7, top_p: 0.9 } });
  // A client asking for the llama-swap alias finds the model.
  expect(t.services.registry.resolve("gpt-4o-mini")?.id).toBe("gpt-oss-120b");
  expect(t.services.config.get().loadTimeoutSeconds).toBe(500);

  const again = await (await post({ yaml: exampleYaml })).json();
  expect(again.data.registered).toEqual([]);
  expect(again.data.failed).toEqual([
    { item: "models.gpt-oss-120b", reason: expect.stringContaining("already registered") },
    { item: "peers.llama-swap-peer", reason: "a peer with that name is already configured" },
    { item: "peers.openrouter", reason: "a peer with that name is already configured" },
  ]);
  expect(t.services.registry.list()).toHaveLength(1);
});

test("peers: the dry run shows them (never a key), the import adds them to the config, a second import reports them", async () => {
  const yaml = `models:\n  far: {cmd: "", proxy: "http://10.1.2.3:8080"}\npeers:\n  box:\n    proxy: http://10.1.2.4\n    apiKey: sk-peer-secret-1\n    models: [qwen, llama]\n`;
  const dry = await post({ yaml, dryRun: true });
  const dryText = await dry.text();
  expect(dryText).not.toContain("sk-peer-secret-1");
  const d = JSON.parse(dryText);
  expect(d.data.peers).toEqual([
    { from: "models.far", name: "far", url: "http://10.1.2.3:8080", models: ["far"], hasApiKey: false, notes: ["no cmd: requests go to http://10.1.2.3:8080"] },
    { from: "peers.box", name: "box", url: "http://10.1.2.4", models: ["qwen", "llama"], hasApiKey: true, notes: [expect.stringContaining("routes 2 model(s)")] },
  ]);
  expect(t.services.config.get().peers).toEqual([]);

  const body = await (await post({ yaml })).json();
  expect(body.data.addedPeers).toEqual([
    { name: "far", from: "models.far", url: "http://10.1.2.3:8080" },
    { name: "box", from: "peers.box", url: "http://10.1.2.4" },
  ]);
  expect(body.data.failed).toEqual([]);
  expect(t.services.config.get().peers).toEqual([
    { name: "far", url: "http://10.1.2.3:8080", models: ["far"] },
    { name: "box", url: "http://10.1.2.4", apiKey: "sk-peer-secret-1", models: ["qwen", "llama"] },
  ]);
  // The running peer registry took them (config.changed), so routing sees them at once.
  expect(t.services.peers.snapshot().map((p) => p.name).sort()).toEqual(["box", "far"]);

  const again = await (await post({ yaml })).json();
  expect(again.data.addedPeers).toEqual([]);
  expect(again.data.failed).toEqual([
    { item: "models.far", reason: "a peer with that name is already configured" },
    { item: "peers.box", reason: "a peer with that name is already configured" },
  ]);
  expect(t.services.config.get().peers).toHaveLength(2);
});

test("a model whose file is missing fails alone; the others are registered", async () => {
  writeModel(join(models, "b.gguf"), { arch: "llama", name: "b" });
  const yaml = `models:\n  a: {cmd: "llama-server -m ${models}/a.gguf"}\n  b: {cmd: "llama-server -m ${models}/b.gguf -c 1024"}\n`;
  const body = await (await post({ yaml })).json();
  expect(body.data.registered.map((r: { id: string }) => r.id)).toEqual(["b"]);
  expect(body.data.failed).toEqual([{ item: "models.a", reason: expect.stringContaining("file does not exist") }]);
  expect(t.services.registry.get("b")!.settings.ctxSize).toBe(1024);
});

test("bad input: clear errors in the envelope", async () => {
  const broken = await post({ yaml: "models:\n  a: [unclosed\n" });
  expect(broken.status).toBe(400);
  const b = await broken.json();
  expect(b.error.code).toBe("VALIDATION_ERROR");
  expect(b.error.message).toBe("Invalid llama-swap configuration");
  expect(b.error.details).toMatch(/line \d+/);

  const noModels = await (await post({ yaml: "logLevel: info\n" })).json();
  expect(noModels.error.details).toBe("Not a llama-swap configuration: it has no models section");

  const missing = await (await post({})).json();
  expect(missing.error.details).toContain("yaml must be a string");

  const big = await post({ yaml: "#".repeat(600 * 1024) });
  expect(big.status).toBe(400);
  expect((await big.json()).error.details).toContain("at most 512 KiB");

  // Raw YAML is not accepted: the body must be JSON like every POST under /api.
  const raw = await t.app.request("/api/import/llama-swap", { method: "POST", headers: { "content-type": "application/yaml" }, body: exampleYaml });
  expect(raw.status).toBe(400);
  expect((await raw.json()).error.details).toContain("must be JSON");
});

test("behind the API key like every /api route", async () => {
  const locked = makeTestServices({ apiKey: "secret-key-123" });
  try {
    const res = await locked.app.request("/api/import/llama-swap", jsonRequest("POST", { yaml: exampleYaml, dryRun: true }));
    expect(res.status).toBe(401);
    const ok = await locked.app.request("/api/import/llama-swap", {
      ...jsonRequest("POST", { yaml: exampleYaml, dryRun: true }),
      headers: { "content-type": "application/json", authorization: "Bearer secret-key-123" },
    });
    expect(ok.status).toBe(200);
  } finally {
    await locked.cleanup();
  }
});

test("the import, activity and live-queue routes sit behind the Host rules: a forged Host is refused", async () => {
  const routes: [string, RequestInit][] = [
    ["/api/import/llama-swap", jsonRequest("POST", { yaml: exampleYaml, dryRun: true })],
    ["/api/activity", {}],
    ["/api/activity/export?format=csv", {}],
    ["/api/activity/summary", {}],
    ["/api/requests", {}],
    ["/api/requests/x/cancel", jsonRequest("POST", {})],
  ];
  for (const [path, init] of routes) {
    const forged = await t.app.request(path, { ...init, headers: { ...(init.headers as Record<string, string>), host: "evil.example:3000" } });
    expect(forged.status).toBe(403);
    expect((await forged.json()).error.code).toBe("FORBIDDEN");
    const rebound = await t.app.request(`http://rebind.evil.example${path}`, init);
    expect(rebound.status).toBe(403);
  }
  expect((await t.app.request("/api/activity", { headers: { host: "127.0.0.1:3000" } })).status).toBe(200);
});
