/**
 * Saved KV caches against a real llama-server: a slot saved when its model is evicted, restored
 * when the conversation returns (llama-server's own timings.cache_n shows the prefix reused), and
 * a damaged or mismatched file ignored safely. Runs when LLAMA_SERVER_BIN and LLAMA_TEST_MODEL
 * are set; skips with a message otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newFileName } from "../../src/kvcache/store";
import { readSlotFileTokens } from "../../src/kvcache/slot-file";
import { startServer, type RunningServer } from "../../src/server";
import { waitFor } from "../helpers/services";

const BIN = process.env.LLAMA_SERVER_BIN;
const MODEL = process.env.LLAMA_TEST_MODEL;
const enabled = Boolean(BIN && MODEL);
if (!enabled) console.log("SKIP real-llama-kvcache: set LLAMA_SERVER_BIN and LLAMA_TEST_MODEL (shared/tools/build-llama-server.sh prints both)");

describe.skipIf(!enabled)("KV cache with a real llama-server", () => {
  let dir: string;
  let srv: RunningServer;
  const DOC = Array.from({ length: 120 }, (_, i) => ["alpha", "beta", "gamma", "delta", "river", "stone"][i % 6]).join(" ");
  const turn1 = [{ role: "user", content: `Read this: ${DOC}. What is it?` }];
  let turn2: unknown[];

  async function chat(model: string, messages: unknown[]) {
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages, max_tokens: 4, temperature: 0 }),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { choices: [{ message: { content: string } }]; timings: { cache_n: number; prompt_n: number } };
  }
  const stopped = (id: string) => waitFor(() => (srv.services.supervisor.runtimeOf(id)?.state ?? "stopped") === "stopped", `${id} to stop`, 30_000);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "lap-realkv-"));
    srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" });
    srv.services.config.update({
      ...srv.services.config.get(),
      serverPath: BIN!, host: "127.0.0.1", port: 24000 + Math.floor(Math.random() * 8000),
      ctx_size: 2048, batch_size: 512, threads: 2, gpu_layers: 0, maxLoadedModels: 1, stopTimeoutSeconds: 10, kvCacheMinTokens: 64,
    });
    // Two registrations of the test model (another path each): "b" is only there to be swapped to.
    const b = join(dir, "b.gguf");
    symlinkSync(MODEL!, b);
    const size = statSync(MODEL!).size;
    srv.services.registry.insert([
      { id: "a", name: "a", path: MODEL!, size, family: "llama", format: "gguf", settings: {} },
      { id: "b", name: "b", path: b, size, family: "llama", format: "gguf", settings: { kvCache: false } },
    ]);
  }, 60_000);

  afterAll(async () => {
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a slot saved on eviction is restored on return: cache_n shows the prefix reused", async () => {
    const first = await chat("a", turn1);
    expect(first.timings.cache_n).toBe(0); // a fresh process: nothing cached yet
    turn2 = [...turn1, { role: "assistant", content: first.choices[0].message.content }, { role: "user", content: "Shorter, please." }];
    await chat("b", [{ role: "user", content: "hi" }]); // maxLoadedModels 1: a is evicted
    await stopped("a");

    const [entry, ...more] = srv.services.kvcache.store.list("a");
    expect(more).toHaveLength(0);
    const file = join(srv.services.kvcache.store.dirOf("a"), entry!.file);
    // The real file's header (llama_state_seq_save_file + packed server_tokens) is what we parse.
    expect(readSlotFileTokens(file).length).toBe(entry!.tokens);
    expect(entry!.tokens).toBeGreaterThan(first.timings.prompt_n - 2);
    expect(statSync(file).size).toBe(entry!.bytes);

    const resumed = await chat("a", turn2);
    console.log(`real llama-server: saved ${entry!.tokens} tokens (${entry!.bytes} bytes); resumed turn cache_n ${resumed.timings.cache_n}, prompt_n ${resumed.timings.prompt_n}`);
    expect(resumed.timings.cache_n).toBeGreaterThan(first.timings.prompt_n * 0.9);
    expect(srv.services.kvcache.counters).toMatchObject({ saves: 1, restores: 1, hits: 1, misses: 0 });
  }, 120_000);

  test("a damaged file and a file of other KV settings are ignored safely: dropped, and the turn answered", async () => {
    const kv = srv.services.kvcache;
    // c: the same model with an f32 K cache (a: f16), so a's file does not fit its KV layout.
    srv.services.registry.insert([{ id: "c", name: "c", path: join(dir, "b.gguf") + ".c", size: 0, family: "llama", format: "gguf", settings: { extraArgs: ["-ctk", "f32"] } }]);
    symlinkSync(MODEL!, join(dir, "b.gguf.c"));
    await chat("c", [{ role: "user", content: "hi" }]); // evicts a (saving its slot again)
    await stopped("a");
    await kv.settled();
    const [saved] = kv.store.list("a");
    const fingerprint = kv.runningFingerprint("c")!;
    expect(fingerprint).toBeTruthy();
    // Record a's file as if c had saved it: only llama-server can tell it does not fit.
    const { id, file } = newFileName();
    const dest = join(kv.store.dirOf("c"), file);
    copyFileSync(join(kv.store.dirOf("a"), saved!.file), dest);
    kv.store.add({ ...saved!, id, file, modelId: "c", fingerprint, crc32: Bun.hash.crc32(readFileSync(dest)) });
    const before = kv.counters.restoreFailures;
    const onC = await chat("c", turn2);
    expect(onC.timings.cache_n).toBe(0);
    expect(kv.counters.restoreFailures).toBe(before + 1);
    expect(kv.store.list("c")).toHaveLength(0);
    expect(existsSync(dest)).toBe(false);

    // a's own file, damaged after the header (same size): caught by its checksum before restoring.
    const path = join(kv.store.dirOf("a"), saved!.file);
    const bytes = readFileSync(path);
    bytes.fill(0, bytes.length - 4096);
    writeFileSync(path, bytes);
    const onA = await chat("a", turn2);
    expect(onA.choices[0].message.content).toBeDefined();
    expect(kv.counters.restoreFailures).toBe(before + 2);
    expect(kv.store.list("a").map((e) => e.id)).not.toContain(saved!.id);
  }, 180_000);
});
