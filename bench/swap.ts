// bench/swap: what a model swap costs through the proxy beyond llama-server's own load time.
// Two models, room for one (maxLoadedModels 1); requests alternate A B A B ..., so every request
// stops one model and loads the other. Per swap it prints:
//   client   the request's latency as the client sees it (openai-style POST /v1/completions)
//   load     the new llama-server's own time from exec to "listening on" (its log's clock)
//   stop     how long the old one took to exit after SIGTERM (our log)
//   gen      the same request to the already running model (no swap)
//   overhead client - load - stop - gen: the proxy's planning, spawn, health polling, forwarding
// Target: overhead + stop <= 50 ms ("swap = llama-server's own load time + at most 50 ms").
//
//   LLAMA_SERVER_BIN=... LLAMA_TEST_MODEL=... bun bench/swap.ts [swaps=8]
//
// Without LLAMA_SERVER_BIN/LLAMA_TEST_MODEL it uses the fake llama-server (then "load" is the fake's
// configured 30 ms, and the figures measure the proxy's own part only).
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startServer } from "../src/server";

const swaps = Number(process.argv[2] ?? 8);
const realBin = process.env.LLAMA_SERVER_BIN;
const realModel = process.env.LLAMA_TEST_MODEL;
const useReal = !!(realBin && realModel);
const dir = mkdtempSync(join(tmpdir(), "lap-bench-swap-"));

const srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "info", environment: "bench", quiet: true, databasePath: ":memory:" });
try {
  srv.services.config.update({
    ...srv.services.config.get(),
    serverPath: useReal ? realBin! : resolve(import.meta.dir, "../tests/fixtures/fake-llama-server.ts"),
    host: "127.0.0.1",
    port: 30000 + Math.floor(Math.random() * 5000),
    ctx_size: 512,
    batch_size: 128,
    threads: 2,
    gpu_layers: 0,
    maxLoadedModels: 1,
  });
  for (const id of ["a", "b"]) {
    const path = join(dir, `${id}.gguf`);
    if (useReal) copyFileSync(realModel!, path);
    else writeFileSync(path, "GGUF fake");
    srv.services.registry.insert([{ id, name: id, path, size: 1 }]);
  }
  const ask = async (model: string) => {
    const t0 = performance.now();
    const res = await fetch(`${srv.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, prompt: "Hi", max_tokens: 2 }) });
    await res.text();
    if (res.status !== 200) throw new Error(`${model}: ${res.status}`);
    return performance.now() - t0;
  };
  /** llama-server's own clock at its "listening on" line: "0.01.414.779" = 1.414779 s since exec. */
  const ownLoadMs = (id: string) => {
    const line = srv.services.logs.query({ source: `llama-server:${id}`, q: "listening on" }).at(-1)?.message ?? "";
    const m = /^(\d+)\.(\d{2})\.(\d{3})\.(\d{3})/.exec(line);
    return m ? Number(m[1]) * 60000 + Number(m[2]) * 1000 + Number(m[3]) + Number(m[4]) / 1000 : NaN;
  };
  const stopMs = (id: string) => {
    const line = srv.services.logs.query({ source: "proxy", q: `Model ${id} stopped in` }).at(-1)?.message ?? "";
    return Number(/stopped in (\d+) ms/.exec(line)?.[1] ?? NaN);
  };
  await ask("a");
  await ask("a");
  const rows: { client: number; load: number; stop: number; gen: number }[] = [];
  let from = "a";
  for (let i = 0; i < swaps; i++) {
    const to = from === "a" ? "b" : "a";
    const client = await ask(to);
    const gen = await ask(to); // same request, model already running
    rows.push({ client, load: ownLoadMs(to), stop: stopMs(from), gen });
    from = to;
  }
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  console.log(`swap through the proxy, ${useReal ? "real llama-server" : "FAKE llama-server (proxy part only)"}, ${swaps} swaps (ms)`);
  console.log("  client    load    stop     gen  overhead");
  for (const r of rows) {
    const over = r.client - r.load - r.stop - r.gen;
    console.log(`${r.client.toFixed(1).padStart(8)}${r.load.toFixed(1).padStart(8)}${r.stop.toFixed(0).padStart(8)}${r.gen.toFixed(1).padStart(8)}${over.toFixed(1).padStart(10)}`);
  }
  const over = rows.map((r) => r.client - r.load - r.stop - r.gen);
  const beyondLoad = rows.map((r) => r.client - r.load - r.gen);
  console.log(`median: client ${med(rows.map((r) => r.client)).toFixed(1)}, llama-server load ${med(rows.map((r) => r.load)).toFixed(1)}, stop ${med(rows.map((r) => r.stop)).toFixed(0)}, proxy overhead ${med(over).toFixed(1)}`);
  console.log(`swap beyond llama-server's own load time (stop + overhead): median ${med(beyondLoad).toFixed(1)} ms (${med(beyondLoad) <= 50 ? "within" : "over"} the 50 ms target)`);
} finally {
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
}
