/**
 * 50 start/stop cycles of one model on the fake llama-server (or the real one: set
 * LLAMA_SERVER_BIN and LLAMA_TEST_MODEL). Prints start and stop latencies, how fast readiness
 * is noticed after the server reports "model loaded", and the stray processes left (must be 0;
 * exits 1 otherwise).
 *
 *   bun bench/supervisor-cycles.ts [cycles]
 */
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { makeHarness, processesMentioning } from "../tests/fixtures/supervisor-harness";

const cycles = Number(Bun.argv[2] ?? 50);
const realBin = process.env.LLAMA_SERVER_BIN;
const realModel = process.env.LLAMA_TEST_MODEL;
const h = await makeHarness({ config: realBin ? { serverPath: realBin, ctx_size: 256 } : {} });
const modelPath = h.addModel("bench", realBin ? {} : { extraArgs: ["--fake-load-ms", "100"] });
if (realBin && realModel) copyFileSync(realModel, modelPath); // -m <tmp dir>/bench.gguf keeps the stray check exact

let loadedLineAt = 0;
const detect: number[] = [];
h.services.bus.on("log", (e) => {
  if (e.source === "llama-server:bench" && /model loaded|listening on http/.test(e.message) && !loadedLineAt) loadedLineAt = performance.now();
});
h.services.bus.on("model.status", (e) => {
  if (e.state === "running" && loadedLineAt) detect.push(performance.now() - loadedLineAt);
});

const starts: number[] = [];
const stops: number[] = [];
const pids = new Set<number>();
for (let i = 0; i < cycles; i++) {
  loadedLineAt = 0;
  let t = performance.now();
  const info = await h.supervisor.start("bench");
  starts.push(performance.now() - t);
  pids.add(info.pid!);
  t = performance.now();
  await h.supervisor.stop("bench");
  stops.push(performance.now() - t);
}
const strays = processesMentioning(h.dir);
await h.close().catch(() => {});

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(1);
};
const line = (name: string, xs: number[]) => console.log(`${name.padEnd(34)} p50 ${pct(xs, 50).padStart(7)} ms   p95 ${pct(xs, 95).padStart(7)} ms   max ${pct(xs, 100).padStart(7)} ms`);
console.log(`${cycles} start/stop cycles on the ${realBin ? "real" : "fake"} llama-server${realBin ? "" : " (100 ms simulated load)"}`);
line("start (spawn -> /health 200)", starts);
line("stop (SIGTERM -> exit awaited)", stops);
if (detect.length) line("ready noticed after 'loaded' line", detect);
console.log(`distinct pids: ${pids.size}   stray processes after the run: ${strays.length}`);
process.exit(strays.length === 0 && pids.size === cycles ? 0 : 1);
