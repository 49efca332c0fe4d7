import { afterAll, beforeAll, expect, test } from "bun:test";
import OpenAI from "openai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseKeysCommand, runKeysCommand } from "../../src/keys/cli";
import { startServer, type RunningServer } from "../../src/server";
import { waitFor } from "../helpers/services";

// Named keys end to end: the real proxy (admin --api-key), keys created by the CLI's code on the
// config file and picked up by hot reload, the openai client and raw fetch with each key.
const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");
const ADMIN = "admin-key-123456";
let dir: string;
let configPath: string;
let srv: RunningServer;

const addKey = (args: string[]): string => {
  let out = "";
  const code = runKeysCommand(parseKeysCommand(["add", ...args, "--config", configPath], {}), (t) => (out += t), (t) => (out += t));
  expect(code).toBe(0);
  return out.trim().split("\n").at(-1)!;
};
const bearer = (key: string) => ({ authorization: `Bearer ${key}`, "content-type": "application/json" });
const chat = (key: string, model: string) =>
  fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: bearer(key), body: JSON.stringify({ model, max_tokens: 3, messages: [{ role: "user", content: "hi" }] }) });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lap-keys-"));
  configPath = join(dir, "llama-server-config.json");
  srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: dir, configPath, logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:", apiKey: ADMIN, activity: { flushMs: 10 } });
  srv.services.config.update({ ...srv.services.config.get(), serverPath: FAKE, host: "127.0.0.1", port: 20000 + Math.floor(Math.random() * 20000), stopTimeoutSeconds: 2, maxRestarts: 0, maxLoadedModels: 3 });
  for (const id of ["qwen-a", "llama-b", "mistral-c"]) {
    const path = join(dir, `${id}.gguf`);
    writeFileSync(path, "GGUF fake weights");
    srv.services.registry.insert([{ id, name: id, path, size: 17, family: "llama", format: "gguf", settings: {} }]);
  }
});
afterAll(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("an inference key limited to two models: those work, others are 403, admin routes are 401", async () => {
  const key = addKey(["teammate", "--scope", "inference", "--models", "qwen*", "--models", "llama-b"]);
  expect(key).toMatch(/^lap-/);
  // Hot reload: the running proxy knows the key once the watcher has read the file.
  await waitFor(() => srv.services.config.namedKeys().some((k) => k.name === "teammate"), "the key loaded");
  // Only the hash is in the file.
  expect(await Bun.file(configPath).text()).not.toContain(key);

  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20_000 });
  const ok = await client.chat.completions.create({ model: "qwen-a", messages: [{ role: "user", content: "hi" }], max_tokens: 3 });
  expect(ok.usage?.completion_tokens).toBe(3);
  expect((await chat(key, "llama-b")).status).toBe(200);

  const refused = await chat(key, "mistral-c");
  expect(refused.status).toBe(403);
  expect((await refused.json()).error).toMatchObject({ type: "permission_error", code: "model_not_allowed", message: "The API key 'teammate' may not use the model 'mistral-c'" });
  // Its model list has only what it may use.
  const list = await (await fetch(`${srv.url}/v1/models`, { headers: bearer(key) })).json();
  expect(list.data.map((m: { id: string }) => m.id).sort()).toEqual(["llama-b", "qwen-a"]);

  // Not an admin: the API, the console, /metrics and the raw upstream passthrough refuse it.
  expect((await fetch(`${srv.url}/api/config`, { headers: bearer(key) })).status).toBe(401);
  expect((await fetch(`${srv.url}/metrics`, { headers: bearer(key) })).status).toBe(401);
  expect((await fetch(`${srv.url}/upstream/qwen-a/props`, { headers: bearer(key) })).status).toBe(401);
  const console = await fetch(`${srv.url}/models`, { headers: { authorization: `Bearer ${key}` }, redirect: "manual" });
  expect(console.status).toBe(401);
  // A wrong key is 401 in OpenAI's shape.
  const wrong = await chat("lap-not-a-key", "qwen-a");
  expect(wrong.status).toBe(401);
  expect((await wrong.json()).error.code).toBe("invalid_api_key");

  // The activity log and the summary know which key it was; /metrics counts per key.
  const rows = await waitFor(async () => {
    const r = await (await fetch(`${srv.url}/api/activity?key=teammate`, { headers: bearer(ADMIN) })).json();
    return r.data.entries.length >= 3 ? r.data.entries : null;
  }, "the key's activity rows");
  expect(rows.map((e: { model: string; status: number }) => [e.model, e.status])).toEqual([["mistral-c", 403], ["llama-b", 200], ["qwen-a", 200]]);
  const summary = await (await fetch(`${srv.url}/api/activity/summary?hours=1`, { headers: bearer(ADMIN) })).json();
  expect(summary.data.keys.find((k: { name: string }) => k.name === "teammate")).toMatchObject({ requests: 3, completionTokens: 6 });
  const metrics = await (await fetch(`${srv.url}/metrics`, { headers: bearer(ADMIN) })).text();
  expect(metrics).toContain('lap_key_requests_total{key="teammate"} 2');
  expect(metrics).toContain('lap_key_tokens_total{key="teammate",kind="completion"} 6');
});

test("requestsPerMinute: the next request is 429 with Retry-After, in OpenAI's shape; an admin named key reaches the API", async () => {
  const limited = addKey(["batch", "--scope", "inference", "--requests-per-minute", "2"]);
  const admin = addKey(["ops", "--scope", "admin"]);
  await waitFor(() => srv.services.config.namedKeys().length === 3, "the keys loaded");
  expect((await chat(limited, "qwen-a")).status).toBe(200);
  expect((await chat(limited, "mistral-c")).status).toBe(200);
  const third = await chat(limited, "qwen-a");
  expect(third.status).toBe(429);
  expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0);
  expect((await third.json()).error).toMatchObject({ type: "rate_limit_exceeded", message: "Key batch is limited to 2 requests per minute" });

  expect((await fetch(`${srv.url}/api/config`, { headers: bearer(admin) })).status).toBe(200);
  expect((await chat(admin, "mistral-c")).status).toBe(200);
  // --api-key is still the admin key.
  expect((await fetch(`${srv.url}/api/config`, { headers: bearer(ADMIN) })).status).toBe(200);
});
