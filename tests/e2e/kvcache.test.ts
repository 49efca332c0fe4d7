import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { ModelSettings } from "../../src/db/schema";
import { readSlotFileTokens } from "../../src/kvcache/slot-file";
import { startServer, type RunningServer } from "../../src/server";
import { waitFor } from "../helpers/services";

// Save on stop / restore on return, end to end: the real proxy and supervisor, the fake
// llama-server (real processes; its slots, prompt cache and slot files behave as the real
// server's, see tests/fixtures/fake-llama-server.ts), requests over real HTTP.
const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");

let dir: string;
let srv: RunningServer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lap-kv-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await srv?.stop();
});

let seq = 0;
async function boot(config: Record<string, unknown> = {}) {
  const sub = join(dir, `run${++seq}`);
  srv = await startServer({
    port: 0, host: "127.0.0.1", dataDir: sub, configPath: join(sub, "config.json"),
    logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:",
  });
  srv.services.config.update({
    ...srv.services.config.get(),
    serverPath: FAKE, host: "127.0.0.1", port: 20000 + Math.floor(Math.random() * 20000),
    stopTimeoutSeconds: 2, maxRestarts: 0, maxLoadedModels: 1, kvCacheMinTokens: 100,
    ...config,
  });
  return sub;
}

/** Model files of different sizes: the fake ties a slot file's state to its model's size. */
function register(id: string, settings: ModelSettings = {}, weights = `GGUF fake weights of ${id}`) {
  const path = join(dir, `${id}-${seq}.gguf`);
  writeFileSync(path, weights);
  return srv.services.registry.insert([{ id, name: id, path, size: weights.length, family: "llama", format: "gguf", settings }])[0]!;
}

/** #11's guard: every state-changing /api request says it is JSON (CSRF defence). */
const DEL = { method: "DELETE", headers: { "content-type": "application/json" } };
const LONG = Array.from({ length: 300 }, (_, i) => `word${i % 17}`).join(" ");
const turn1 = [{ role: "user", content: `Here is a document: ${LONG}. Summarise it.` }];

async function chat(model: string, messages: unknown[], extra: Record<string, unknown> = {}) {
  const res = await fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages, max_tokens: 4, ...extra }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { choices: [{ message: { content: string } }]; timings: { cache_n: number; prompt_n: number } };
}

/** Turn 1 on alpha, then a request to beta (maxLoadedModels 1: alpha is evicted and saved). */
async function conversationThenSwap() {
  const first = await chat("alpha", turn1);
  const turn2 = [...turn1, { role: "assistant", content: first.choices[0].message.content }, { role: "user", content: "And in one word?" }];
  await chat("beta", [{ role: "user", content: "hi" }]);
  await waitFor(() => srv.services.supervisor.runtimeOf("alpha")?.state === "stopped", "alpha to be evicted");
  return turn2;
}

describe("KV cache across swaps", () => {
  test("a model evicted by a swap saves its long slot; the next turn is restored and llama-server reuses the prefix", async () => {
    const data = await boot();
    register("alpha");
    register("beta");
    const turn2 = await conversationThenSwap();

    const [entry, ...others] = srv.services.kvcache.store.list("alpha");
    expect(others).toHaveLength(0);
    expect(entry!.tokens).toBeGreaterThan(300);
    expect(entry!.file).toMatch(/^[a-z0-9-]+\.bin$/);
    const file = join(data, "kv-cache", "alpha", entry!.file);
    expect(statSync(file).size).toBe(entry!.bytes);
    expect(readSlotFileTokens(file).length).toBe(entry!.tokens);
    expect(srv.services.kvcache.store.list("beta")).toHaveLength(0); // its prompt was short

    // Without the cache, alpha would start empty: cache_n 0 for a brand-new process.
    const resumed = await chat("alpha", turn2);
    expect(resumed.timings.cache_n).toBeGreaterThan(300);
    expect(resumed.timings.prompt_n).toBeLessThan(30);
    const c = srv.services.kvcache.counters;
    expect(c).toMatchObject({ saves: 1, restores: 1, hits: 1, misses: 0 });
    expect(srv.services.kvcache.store.get(entry!.id)!.hits).toBe(1);

    const metrics = await (await fetch(`${srv.url}/metrics`)).text();
    expect(metrics).toMatch(/llamaproxy_kv_cache_restores_total 1\b/);
    expect(metrics).toMatch(/llamaproxy_kv_cache_hits_total 1\b/);
    expect(metrics).toMatch(/llamaproxy_kv_cache_saved_bytes_total \d+/);
  });

  test("Ollama's /api/chat resumes after a swap from the saved cache too", async () => {
    await boot();
    register("alpha");
    register("beta");
    const ollamaChat = async (messages: unknown[]) => {
      const res = await fetch(`${srv.url}/api/chat`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "alpha", messages, stream: false, options: { num_predict: 4 } }),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as { message: { content: string }; prompt_eval_count: number };
    };
    const first = await ollamaChat(turn1);
    expect(first.prompt_eval_count).toBeGreaterThan(300);
    await chat("beta", [{ role: "user", content: "hi" }]);
    await waitFor(() => srv.services.supervisor.runtimeOf("alpha")?.state === "stopped", "alpha to be evicted");
    expect(srv.services.kvcache.store.list("alpha")).toHaveLength(1);

    // Ollama's prompt_eval_count is the whole prompt, cached or not (as Ollama reports it); that
    // llama-server reused the prefix is the restore's hit, counted from its own timings.cache_n.
    const resumed = await ollamaChat([...turn1, { role: "assistant", content: first.message.content }, { role: "user", content: "And in one word?" }]);
    expect(resumed.prompt_eval_count).toBeGreaterThan(300);
    expect(srv.services.kvcache.counters).toMatchObject({ saves: 1, restores: 1, hits: 1, misses: 0 });
    expect(srv.services.kvcache.store.list("alpha")[0]!.hits).toBe(1);
  });

  test("the same conversation saved again after more turns keeps one file", async () => {
    await boot();
    register("alpha");
    register("beta");
    const turn2 = await conversationThenSwap();
    const before = srv.services.kvcache.store.list("alpha");
    await chat("alpha", turn2);
    await chat("beta", [{ role: "user", content: "hi" }]);
    await waitFor(() => srv.services.supervisor.runtimeOf("alpha")?.state === "stopped", "alpha to be evicted again");
    const after = srv.services.kvcache.store.list("alpha");
    expect(after).toHaveLength(1);
    expect(after[0]!.id).not.toBe(before[0]!.id);
    expect(after[0]!.tokens).toBeGreaterThan(before[0]!.tokens);
    expect(existsSync(join(srv.services.kvcache.store.dirOf("alpha"), before[0]!.file))).toBe(false);
  });

  test("a restore the model ignores is recorded, its file dropped, and the settings marked not restorable", async () => {
    await boot();
    register("alpha", { extraArgs: ["--fake-ignore-restore"] });
    register("beta");
    const turn2 = await conversationThenSwap();
    expect(srv.services.kvcache.store.list("alpha")).toHaveLength(1);
    const resumed = await chat("alpha", turn2);
    expect(resumed.timings.cache_n).toBe(0); // answered all the same, from scratch
    expect(srv.services.kvcache.counters).toMatchObject({ restores: 1, hits: 0, misses: 1 });
    expect(srv.services.kvcache.store.list("alpha")).toHaveLength(0);
    const view = await (await fetch(`${srv.url}/api/models/alpha/kv-cache`)).json();
    expect(view.data.unrestorable).toHaveLength(1);
    expect(view.data.unrestorable[0].reason).toContain("reused 0");
  });

  test("a damaged file is caught by its checksum and dropped; the request is still answered", async () => {
    await boot();
    register("alpha");
    register("beta");
    const turn2 = await conversationThenSwap();
    await srv.services.kvcache.settled();
    const [entry] = srv.services.kvcache.store.list("alpha");
    expect(entry!.crc32).not.toBeNull();
    const path = join(srv.services.kvcache.store.dirOf("alpha"), entry!.file);
    // Damage the KV data after the header, keeping the size: llama-server itself would not notice.
    const bytes = readFileSync(path);
    bytes.fill(7, bytes.length - 200);
    writeFileSync(path, bytes);
    const resumed = await chat("alpha", turn2);
    expect(resumed.timings.cache_n).toBe(0);
    expect(srv.services.kvcache.counters).toMatchObject({ restores: 0, restoreFailures: 1 });
    expect(srv.services.kvcache.store.list("alpha")).toHaveLength(0);
    expect(existsSync(path)).toBe(false);
    // Not the model's fault: later saves are still offered.
    expect((await (await fetch(`${srv.url}/api/models/alpha/kv-cache`)).json()).data.unrestorable).toHaveLength(0);
  });

  test("a file llama-server refuses (another model's state) is dropped; the request is still answered", async () => {
    await boot();
    register("alpha");
    register("beta");
    const turn2 = await conversationThenSwap();
    await srv.services.kvcache.settled();
    const store = srv.services.kvcache.store;
    const [entry] = store.list("alpha");
    const path = join(store.dirOf("alpha"), entry!.file);
    // Rewrite the fake's model signature in the state ("fake-kv:<model size>") to another model's,
    // and record the new checksum: a file that is intact but was not saved by this model.
    const bytes = readFileSync(path);
    const text = bytes.toString("latin1");
    const at = text.indexOf("fake-kv:");
    expect(at).toBeGreaterThan(0);
    bytes.write("fake-kv:9", at, "latin1");
    writeFileSync(path, bytes);
    store.add({ ...entry!, crc32: Bun.hash.crc32(bytes) });
    const resumed = await chat("alpha", turn2);
    expect(resumed.timings.cache_n).toBe(0);
    expect(srv.services.kvcache.counters).toMatchObject({ restores: 0, restoreFailures: 1 });
    expect(store.list("alpha")).toHaveLength(0);
    expect(existsSync(path)).toBe(false);
  });

  test("a cache saved under other settings is never offered", async () => {
    await boot();
    register("alpha");
    register("beta");
    const turn2 = await conversationThenSwap();
    srv.services.registry.update("alpha", { settings: { ...srv.services.registry.get("alpha")!.settings, ctxSize: 4096 } });
    const resumed = await chat("alpha", turn2);
    expect(resumed.timings.cache_n).toBe(0);
    expect(srv.services.kvcache.counters.restores).toBe(0);
    const view = await (await fetch(`${srv.url}/api/models/alpha/kv-cache`)).json();
    expect(view.data.entries).toHaveLength(1);
    expect(view.data.entries[0].matchesRunning).toBe(false);
  });

  test("a save that takes too long never holds the stop past its grace period", async () => {
    await boot({ stopTimeoutSeconds: 1 });
    register("alpha", { extraArgs: ["--fake-save-delay-ms", "20000"] });
    await chat("alpha", turn1);
    const t0 = performance.now();
    await srv.services.pool.stop("alpha");
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(2900); // 1 s for the save, at most 1 s of SIGTERM grace, slack
    expect(srv.services.kvcache.store.list("alpha")).toHaveLength(0);
    expect(srv.services.kvcache.counters.saveFailures).toBe(1);
    expect(readdirSync(srv.services.kvcache.store.dirOf("alpha"))).toEqual([]);
  });

  test("off per model and globally: no --slot-save-path, nothing saved", async () => {
    await boot();
    register("alpha", { kvCache: false });
    const rt = await srv.services.supervisor.start("alpha");
    expect(readFileSync(`/proc/${rt.pid}/cmdline`, "utf8")).not.toContain("--slot-save-path");
    await chat("alpha", turn1);
    await srv.services.pool.stop("alpha");
    expect(srv.services.kvcache.store.list()).toHaveLength(0);

    srv.services.config.update({ ...srv.services.config.get(), kvCacheDiskMiB: 0 });
    register("gamma");
    const rt2 = await srv.services.supervisor.start("gamma");
    expect(readFileSync(`/proc/${rt2.pid}/cmdline`, "utf8")).not.toContain("--slot-save-path");
  });

  test("GET and DELETE /api/models/:id/kv-cache list and remove saved caches", async () => {
    await boot();
    register("alpha");
    register("beta");
    await conversationThenSwap();
    const res = await fetch(`${srv.url}/api/models/alpha/kv-cache`);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.success).toBe(true);
    expect(body.data.entries).toHaveLength(1);
    expect(body.data.entries[0]).toMatchObject({ tokens: expect.any(Number), sizeBytes: expect.any(Number), hits: 0 });
    const id = body.data.entries[0].id;
    expect((await fetch(`${srv.url}/api/models/alpha/kv-cache/nope`, DEL)).status).toBe(404);
    expect((await fetch(`${srv.url}/api/models/zzz/kv-cache`)).status).toBe(404);
    const del = await fetch(`${srv.url}/api/models/alpha/kv-cache/${id}`, DEL);
    expect(del.status).toBe(200);
    expect(srv.services.kvcache.store.list("alpha")).toHaveLength(0);
    expect(readdirSync(srv.services.kvcache.store.dirOf("alpha"))).toEqual([]);
    const all = await fetch(`${srv.url}/api/models/alpha/kv-cache`, DEL);
    expect((await all.json()).data).toEqual({ modelId: "alpha", deleted: 0 });
  });

  test("behind the same Host and Origin rules as every route: a forged Host or a cross-site DELETE is refused", async () => {
    await boot();
    register("alpha");
    const u = new URL(srv.url);
    const forged = await fetch(`${srv.url}/api/models/alpha/kv-cache`, { headers: { host: `evil.example:${u.port}` } });
    expect(forged.status).toBe(403);
    const cross = await fetch(`${srv.url}/api/models/alpha/kv-cache`, { ...DEL, headers: { ...DEL.headers, origin: "http://evil.example" } });
    expect(cross.status).toBe(403);
    expect((await fetch(`${srv.url}/api/models/alpha/kv-cache`)).status).toBe(200);
  });

  test("the console lists a model's saved conversations and deletes them", async () => {
    await boot();
    register("alpha");
    register("beta");
    await conversationThenSwap();
    const [entry] = srv.services.kvcache.store.list("alpha");
    const page = await (await fetch(`${srv.url}/models`)).text();
    expect(page).toContain('data-kv-caches="alpha"');
    expect(page).toContain(`data-kv-entry="${entry!.id}"`);
    expect(page).toContain(entry!.tokens.toLocaleString("en-US"));
    const post = { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", origin: srv.url, "hx-request": "true" }, body: "" };
    const res = await fetch(`${srv.url}/ui/models/alpha/kv-cache/${entry!.id}/delete`, post);
    expect(res.status).toBe(200);
    const table = await res.text();
    expect(table).toContain("Saved conversation deleted.");
    expect(table).not.toContain('data-kv-caches="alpha"');
    expect(srv.services.kvcache.store.list("alpha")).toHaveLength(0);
    // Unticking the box in the model's settings turns the cache off for it.
    const off = await fetch(`${srv.url}/ui/models/alpha/settings`, { ...post, body: "ctxSize=" });
    expect(off.status).toBe(200);
    expect(srv.services.registry.get("alpha")!.settings.kvCache).toBe(false);
  });

  test("two requests of the conversation arriving at once restore its file once, into one slot", async () => {
    await boot();
    register("alpha");
    register("beta");
    const turn2 = await conversationThenSwap();
    await srv.services.pool.start("alpha");
    const [a, b] = await Promise.all([chat("alpha", turn2), chat("alpha", turn2)]);
    expect(srv.services.kvcache.counters).toMatchObject({ restores: 1, hits: 1 });
    // One of them got the restored slot; the other ran in another slot from scratch, or after
    // the first in the restored slot (llama-server's prefix similarity picks it when it is free).
    expect(Math.max(a.timings.cache_n, b.timings.cache_n)).toBeGreaterThan(300);
  });
});
