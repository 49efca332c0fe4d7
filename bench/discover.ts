/**
 * Discovery speed: a folder of 1,000 GGUF files (headers only, files padded sparsely to model
 * sizes), scanned cold and again (rescan), through scanForModels and through the full
 * POST /api/models/discover path (scan + registry upsert). Also a folder of 100 files with a
 * real-sized vocabulary (32k and 152k tokens), the part of a header that costs most to skip.
 *
 *   bun bench/discover.ts            # prints figures
 *   HF_GGUF=/path/to/node_modules/@huggingface/gguf bun bench/discover.ts   # also times that parser
 */
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../src/app";
import { scanForModels } from "../src/models/discover";
import { readGgufHeader } from "../src/models/gguf";
import { createServices, shutdownServices } from "../src/services";
import { ggufBytes, modelMetadata } from "../tests/fixtures/gguf-writer";

const FILES = Number(process.env.FILES ?? 1000);
const root = mkdtempSync(join(tmpdir(), "bench-discover-"));
const ms = (t0: number) => `${(performance.now() - t0).toFixed(1)} ms`;

function makeFolder(dir: string, count: number, vocab: number) {
  const archs = ["llama", "qwen2", "gemma2", "phi3", "mistral", "deepseek2", "falcon", "starcoder2"];
  const types = [15, 7, 1, 18, 12, 2, 30, 32];
  const templates = archs.map((arch, i) =>
    ggufBytes({ tensorCount: 291, metadata: modelMetadata({ arch, name: `${arch} model`, fileType: types[i], contextLength: 4096 << (i % 4), vocab }) }),
  );
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `repo-${Math.floor(i / 10)}`);
    if (i % 10 === 0) mkdirSync(sub, { recursive: true });
    const p = join(sub, `model-${i}-${archs[i % 8]}.gguf`);
    writeFileSync(p, templates[i % 8]!);
    truncateSync(p, 4 * 1024 ** 3); // sparse: looks like a 4 GB model, costs no disk
  }
  return templates[0]!.length;
}

try {
  const small = join(root, "small");
  const headerBytes = makeFolder(small, FILES, 1000);
  console.log(`${FILES} GGUF files (header ${(headerBytes / 1024).toFixed(0)} KB each, sparse 4 GB), 100 folders`);
  let t0 = performance.now();
  let r = await scanForModels({ roots: [small] });
  console.log(`  scanForModels cold:   ${ms(t0)}  (${r.models.length} models, ${r.skipped.length} skipped)`);
  t0 = performance.now();
  r = await scanForModels({ roots: [small] });
  console.log(`  scanForModels warm:   ${ms(t0)}`);

  const s = createServices({ port: 0, host: "127.0.0.1", dataDir: root, configPath: join(root, "c.json"), logLevel: "error", environment: "bench", quiet: true, databasePath: join(root, "bench.db") });
  const app = createApp(s);
  const discover = () => app.request("/api/models/discover", { method: "POST", body: JSON.stringify({ paths: [small] }), headers: { "content-type": "application/json" } });
  t0 = performance.now();
  let res = await discover();
  const body = (await res.json()) as { data: { totalFound: number; added: string[] } };
  console.log(`  POST discover, first: ${ms(t0)}  (status ${res.status}, ${body.data.totalFound} found, ${body.data.added.length} added to SQLite)`);
  t0 = performance.now();
  res = await discover();
  await res.json();
  console.log(`  POST discover, rescan: ${ms(t0)}`);
  t0 = performance.now();
  res = await app.request("/api/models");
  await res.json();
  console.log(`  GET /api/models (${FILES}): ${ms(t0)}`);
  await shutdownServices(s);

  for (const vocab of [32_000, 152_064]) {
    const big = join(root, `vocab-${vocab}`);
    const hb = makeFolder(big, 100, vocab);
    t0 = performance.now();
    const rb = await scanForModels({ roots: [big] });
    console.log(`100 GGUF files with a ${vocab}-token vocabulary (header ${(hb / 1024 / 1024).toFixed(2)} MB each): scan ${ms(t0)} (${rb.models.length} models)`);
    const one = join(big, "repo-0/model-0-llama.gguf");
    t0 = performance.now();
    const h = await readGgufHeader(one);
    console.log(`  one header: ${ms(t0)}, ${(h.bytesRead / 1024).toFixed(0)} KB read`);
    if (process.env.HF_GGUF) {
      const { gguf } = (await import(process.env.HF_GGUF)) as { gguf: (p: string, o: object) => Promise<unknown> };
      t0 = performance.now();
      for (let i = 0; i < 100; i++) await gguf(join(big, `repo-${Math.floor(i / 10)}/model-${i}-${["llama", "qwen2", "gemma2", "phi3", "mistral", "deepseek2", "falcon", "starcoder2"][i % 8]}.gguf`), { allowLocalFile: true });
      console.log(`  @huggingface/gguf, same 100 files: ${ms(t0)}`);
    }
  }
  if (process.env.HF_GGUF) {
    const { gguf } = (await import(process.env.HF_GGUF)) as { gguf: (p: string, o: object) => Promise<unknown> };
    t0 = performance.now();
    for (let i = 0; i < FILES; i++) await gguf(join(small, `repo-${Math.floor(i / 10)}/model-${i}-${["llama", "qwen2", "gemma2", "phi3", "mistral", "deepseek2", "falcon", "starcoder2"][i % 8]}.gguf`), { allowLocalFile: true });
    console.log(`@huggingface/gguf on the ${FILES} small files (sequential, no walk): ${ms(t0)}`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
