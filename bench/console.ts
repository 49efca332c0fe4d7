// Console render cost: how long the server takes to build each page/fragment (in process, via
// createApp().request, so no network), with a realistic registry and a full log ring.
// Run: bun bench/console.ts   (prints figures; no pass/fail)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../src/app";
import { createServices, shutdownServices } from "../src/services";

const dir = mkdtempSync(join(tmpdir(), "lap-bench-console-"));
const s = createServices({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "c.json"), logLevel: "error", environment: "bench", quiet: true, databasePath: ":memory:" });
const app = createApp(s);

const MODELS = 100;
s.registry.insert(Array.from({ length: MODELS }, (_, i) => ({ id: `model-${i}`, name: `Model ${i} 8B Instruct`, path: `/models/m${i}.Q4_K_M.gguf`, family: "llama", size: 4_900_000_000, quantization: "Q4_K_M", contextSize: 8192 })));
for (let i = 0; i < 5000; i++) s.logs.append(i % 10 === 0 ? "warn" : "info", i % 2 ? "proxy" : "llama-server:model-1", `log line ${i} with some text to search in`);

async function measure(path: string, n = 200) {
  // Warm up (JIT, first asset read).
  for (let i = 0; i < 10; i++) await (await app.request(path)).text();
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await app.request(path);
    bytes = (await res.text()).length;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / n;
  const p95 = times[Math.floor(n * 0.95)]!;
  console.log(`${path.padEnd(34)} mean ${mean.toFixed(2).padStart(6)} ms  p95 ${p95.toFixed(2).padStart(6)} ms  ${(bytes / 1024).toFixed(1).padStart(6)} kB`);
}

console.log(`console render, ${MODELS} models, ${s.logs.size} log lines, bun ${Bun.version}`);
for (const p of ["/", "/ui/dashboard", "/models", "/ui/models/table", "/logs", "/ui/logs?level=warn&q=line%2012", "/ui/logs/lines?afterId=4990", "/settings", "/playground"]) await measure(p);
await measure("/static/htmx.min.js", 500);

await shutdownServices(s);
rmSync(dir, { recursive: true, force: true });
