// bench/kv-swap: a long conversation on model A, a swap to model B and back, then A's next turn.
// Time to first token of that turn with the KV cache (A's slot saved at the swap, restored on
// return) against without it (kvCache off for A: the cache dies with the process, as before),
// alternated restore / none / restore / none ... in one run, medians and their ratio printed.
//
//   LLAMA_SERVER_BIN=... [LLAMA_TEST_MODEL=...] [LLAMA_SRC=...] bun bench/kv-swap.ts [rounds=3] [prompt_words=2200]
//
// Model A is made with shared/tools/make-tiny-gguf.py (8 layers, width 256, f16: ~45 MB), big
// enough that processing a few thousand prompt tokens takes seconds on 2 cores; model B is
// LLAMA_TEST_MODEL (or a second tiny model). Both run through the real proxy (startServer), so
// the path measured is the product's: eviction -> beforeStop save -> reload -> restore -> id_slot.
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startServer } from "../src/server";

const rounds = Number(process.argv[2] ?? 3);
const promptWords = Number(process.argv[3] ?? 2200);
const bin = process.env.LLAMA_SERVER_BIN;
if (!bin) {
  console.log("SKIP bench/kv-swap: set LLAMA_SERVER_BIN (eval \"$(bash ../shared/tools/build-llama-server.sh | sed 's/^/export /')\")");
  process.exit(0);
}
const ROOT = resolve(import.meta.dir, "..");
const LLAMA_SRC = process.env.LLAMA_SRC ?? "/root/.cache/llama-async-proxy/llama.cpp/src";
const MAKE = resolve(ROOT, "../shared/tools/make-tiny-gguf.py");
const dir = mkdtempSync(join(tmpdir(), "lap-kvbench-"));

function makeModel(out: string, args: string[]) {
  const r = Bun.spawnSync(["python3", MAKE, LLAMA_SRC, out, ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`make-tiny-gguf failed: ${r.stderr.toString()}`);
}

const modelA = join(dir, "a-8x256-f16.gguf");
makeModel(modelA, ["8", "256", "f16", "4", "4", "8192"]);
const modelB = process.env.LLAMA_TEST_MODEL && existsSync(process.env.LLAMA_TEST_MODEL) ? process.env.LLAMA_TEST_MODEL : join(dir, "b.gguf");
if (!existsSync(modelB)) makeModel(modelB, ["2", "64"]);

const srv = await startServer({
  port: 0, host: "127.0.0.1", dataDir: join(dir, "data"), configPath: join(dir, "data", "config.json"),
  logLevel: "warn", environment: "bench", quiet: true, databasePath: ":memory:",
});
srv.services.config.update({
  ...srv.services.config.get(),
  serverPath: bin, host: "127.0.0.1", port: 30000 + Math.floor(Math.random() * 10000),
  ctx_size: 8192, threads: 2, maxLoadedModels: 1, stopTimeoutSeconds: 20, loadTimeoutSeconds: 120,
  kvCacheMinTokens: 256, kvCacheDiskMiB: 2048,
});
// -np 1: one slot, so the prompt cache is all in the slot that is saved (no idle-slot shuffling).
const args = ["-np", "1", "--temp", "0"];
srv.services.registry.insert([
  { id: "model-a", name: "model-a", path: modelA, size: statSync(modelA).size, family: "llama", format: "gguf", settings: { extraArgs: args } },
  { id: "model-b", name: "model-b", path: modelB, size: statSync(modelB).size, family: "llama", format: "gguf", settings: { extraArgs: args, ctxSize: 2048 } },
]);

const WORDS = "the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their been has would when who will more if no out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long here get both between life being under never day same another know while last might us great old year off come since against go came right used take three".split(" ");

function documentText(round: number, mode: string): string {
  // A different document per round: no round can reuse another's cache by accident.
  const out: string[] = [`Document ${round}-${mode}:`];
  let x = round * 7919 + (mode === "restore" ? 1 : 2);
  for (let i = 0; i < promptWords; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out.push(WORDS[x % WORDS.length]!);
  }
  return out.join(" ");
}

interface Turn { ttftMs: number; content: string; cacheN?: number; promptN?: number; promptMs?: number }

async function chat(model: string, messages: unknown[], maxTokens = 8): Promise<Turn> {
  const t0 = performance.now();
  const res = await fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages, max_tokens: maxTokens, stream: true, temperature: 0 }),
  });
  if (res.status !== 200 || !res.body) throw new Error(`chat ${model}: HTTP ${res.status} ${await res.text()}`);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  let ttftMs: number | undefined;
  let content = "";
  let timings: { cache_n?: number; prompt_n?: number; prompt_ms?: number } | undefined;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i).trim();
      buf = buf.slice(i + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      const piece = j.choices?.[0]?.delta?.content;
      if (typeof piece === "string") {
        ttftMs ??= performance.now() - t0;
        content += piece;
      }
      if (j.timings) timings = j.timings;
    }
  }
  return { ttftMs: ttftMs ?? performance.now() - t0, content, cacheN: timings?.cache_n, promptN: timings?.prompt_n, promptMs: timings?.prompt_ms };
}

async function startA() {
  const t0 = performance.now();
  await srv.services.pool.ensureStarted("model-a");
  return performance.now() - t0;
}

const rows: Array<{ mode: string; round: number; ttft: number; reload: number; cacheN?: number; promptN?: number; promptMs?: number; turn1Ms: number; tokens: number }> = [];
try {
  // Warm-up: load both models once (page cache, first-spawn costs) outside the measurements.
  await chat("model-b", [{ role: "user", content: "hi" }], 1);
  await chat("model-a", [{ role: "user", content: "hi" }], 1);
  const modes = ["restore", "none"] as const;
  for (let r = 1; r <= rounds; r++) {
    for (const mode of modes) {
      const row = srv.services.registry.get("model-a")!;
      srv.services.registry.update("model-a", { settings: { ...row.settings, kvCache: mode === "restore" } });
      await srv.services.pool.stop("model-a"); // next start picks the setting up
      const turn1 = [{ role: "user", content: `${documentText(r, mode)}\n\nWhat is this document about?` }];
      const first = await chat("model-a", turn1);
      await chat("model-b", [{ role: "user", content: "hello" }], 4); // the swap: A is evicted (and saved)
      const turn2 = [...turn1, { role: "assistant", content: first.content }, { role: "user", content: "Say it in three words." }];
      const reload = await startA();
      const second = await chat("model-a", turn2);
      rows.push({ mode, round: r, ttft: second.ttftMs, reload, cacheN: second.cacheN, promptN: second.promptN, promptMs: second.promptMs, turn1Ms: first.ttftMs, tokens: (second.cacheN ?? 0) + (second.promptN ?? 0) });
      console.log(`round ${r} ${mode.padEnd(7)} turn-1 TTFT ${first.ttftMs.toFixed(0).padStart(6)} ms | reload ${reload.toFixed(0).padStart(5)} ms | turn-2 TTFT ${second.ttftMs.toFixed(0).padStart(6)} ms (cache_n ${second.cacheN}, prompt_n ${second.promptN}, prompt_ms ${second.promptMs?.toFixed(0)})`);
    }
  }
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const of = (mode: string, k: "ttft" | "reload") => med(rows.filter((x) => x.mode === mode).map((x) => x[k]));
  const withR = of("restore", "ttft");
  const without = of("none", "ttft");
  const reloadR = of("restore", "reload");
  const reloadN = of("none", "reload");
  const c = srv.services.kvcache.counters;
  const files = srv.services.kvcache.totals();
  console.log("");
  console.log(`model A ${(statSync(modelA).size / 1e6).toFixed(1)} MB (8 layers, width 256, f16), turn-2 prompt ~${med(rows.map((x) => x.tokens))} tokens, ${rounds} rounds per mode, alternated`);
  console.log(`| turn-2 time to first token (median) | with restore | without | ratio |`);
  console.log(`|---|---|---|---|`);
  console.log(`| request only (A already reloaded) | ${withR.toFixed(0)} ms | ${without.toFixed(0)} ms | ${(without / withR).toFixed(1)}x lower |`);
  console.log(`| including A's reload | ${(withR + reloadR).toFixed(0)} ms | ${(without + reloadN).toFixed(0)} ms | ${((without + reloadN) / (withR + reloadR)).toFixed(1)}x lower |`);
  console.log(`kv cache: saves ${c.saves}, restores ${c.restores}, hits ${c.hits}, misses ${c.misses}, saved ${(c.bytesSaved / 1e6).toFixed(1)} MB, restored ${(c.bytesRestored / 1e6).toFixed(1)} MB, on disk ${files.files} files / ${(files.bytes / 1e6).toFixed(1)} MB`);
  console.log(`target: >= 5x lower -> ${without / withR >= 5 ? "met" : "NOT met"}`);
} finally {
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
}
