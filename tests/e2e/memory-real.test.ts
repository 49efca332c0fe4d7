/**
 * The memory estimate against the real llama-server's own report, and memory-based eviction with
 * real llama-servers. Models of different shapes come from ../shared/tools/make-tiny-gguf.py
 * (layers, width, f16, grouped-query KV heads, trained context). Runs when LLAMA_SERVER_BIN and
 * LLAMA_TEST_MODEL are set (and the llama.cpp sources with gguf-py sit beside the binary, as
 * shared/tools/build-llama-server.sh leaves them); skips with a message otherwise.
 *
 * The error of each estimate is printed as a table: estimate (weights + KV + compute) against
 * llama-server's model + context + compute buffers. Target: within 10 %.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { estimateMemory, DEFAULT_MEMORY_SETTINGS } from "../../src/memory/estimate";
import { readMemoryFacts } from "../../src/memory/facts";
import { MemoryReportParser } from "../../src/memory/report";
import { applyExtraArgs } from "../../src/memory/settings";
import { startServer, type RunningServer } from "../../src/server";
import { killAndWait, LineWatcher } from "../helpers/process";

const BIN = process.env.LLAMA_SERVER_BIN;
const MODEL = process.env.LLAMA_TEST_MODEL;
const SRC = BIN ? resolve(dirname(BIN), "../src") : "";
const TOOL = resolve(import.meta.dir, "../../../shared/tools/make-tiny-gguf.py");
const enabled = Boolean(BIN && MODEL && existsSync(join(SRC, "gguf-py")) && existsSync(TOOL));
if (!enabled) console.log("SKIP memory-real: set LLAMA_SERVER_BIN and LLAMA_TEST_MODEL (shared/tools/build-llama-server.sh prints both; it leaves the llama.cpp sources beside the binary)");

const MiB = 1024 * 1024;
/** name, make-tiny-gguf.py arguments: n_layer n_embd ftype n_head n_head_kv ctx */
const SHAPES: [string, string[]][] = [
  ["2 layers x 64, f32, 4 heads", ["2", "64", "f32", "4", "4", "2048"]],
  ["8 layers x 256, f16, GQA 8/2", ["8", "256", "f16", "8", "2", "8192"]],
  ["12 layers x 384, f16, MQA 6/1", ["12", "384", "f16", "6", "1", "32768"]],
  ["4 layers x 512, f16, 8 heads", ["4", "512", "f16", "8", "8", "4096"]],
];
/** Settings tried on every shape (llama-server flags), the context first. */
const RUNS: string[][] = [["-c", "1024"], ["-c", "8192"], ["-c", "4096", "-ctk", "q8_0", "-ctv", "q8_0"], ["-c", "2048", "-fa", "off"]];

let dir: string;
const files = new Map<string, string>();

async function run(cmd: string[]): Promise<void> {
  const p = Bun.spawn(cmd, { stdout: "ignore", stderr: "pipe" });
  const err = await new Response(p.stderr).text();
  if ((await p.exited) !== 0) throw new Error(`${cmd.join(" ")} failed: ${err}`);
}

/**
 * Starts llama-server as the proxy would (-lv 4, --fit off), reads the buffer sizes it prints
 * while loading (exact to 0.01 MiB; the exit table rounds down to whole MiB), stops it.
 */
async function report(model: string, args: string[], port: number): Promise<MemoryReportParser> {
  const p = Bun.spawn([BIN!, "-m", model, "--host", "127.0.0.1", "--port", String(port), "-t", "2", "-ngl", "0", "-lv", "4", "--fit", "off", ...args], { stdout: "ignore", stderr: "pipe" });
  const err = new LineWatcher(p.stderr as ReadableStream<Uint8Array>);
  try {
    await Promise.race([
      err.wait(/listening on/, 60_000),
      p.exited.then((code) => {
        throw new Error(`llama-server exited with ${code} before listening (${args.join(" ")}):\n${err.text.slice(-2000)}`);
      }),
    ]);
  } finally {
    // A SIGTERM right after "listening on" can be lost (llama-server's terminate-before-start_loop
    // race, see src/supervisor/process.ts): SIGKILL; the report was printed while loading.
    await killAndWait(p, "SIGKILL");
  }
  const parser = new MemoryReportParser();
  const text = err.text.slice(0, err.text.indexOf("listening on"));
  for (const l of text.split("\n")) parser.line(l);
  return parser;
}

describe.skipIf(!enabled)("memory estimate vs the real llama-server", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "lap-memreal-"));
    await Promise.all(
      SHAPES.map(async ([name, args], i) => {
        const out = join(dir, `shape${i}.gguf`);
        await run(["python3", TOOL, SRC, out, ...args]);
        files.set(name, out);
      }),
    );
  }, 120_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("every shape and setting is estimated within 10 % of what llama-server allocates", async () => {
    const rows: string[] = [];
    let worst = 0;
    let port = 23000 + Math.floor(Math.random() * 5000);
    for (const [name, shape] of SHAPES) {
      const path = files.get(name)!;
      const facts = readMemoryFacts(path);
      const headDim = Number(shape[1]) / Number(shape[3]);
      // llama.cpp refuses a quantized cache whose block (32) does not divide the head size.
      for (const args of RUNS.filter((a) => !a.includes("q8_0") || headDim % 32 === 0)) {
        const r = await report(path, args, port++);
        const real = r.totalBytes();
        const s = applyExtraArgs({ ...DEFAULT_MEMORY_SETTINGS, batchSize: 2048, gpuLayers: 0 }, args);
        const e = estimateMemory(facts, s, false);
        const est = e.weightsBytes + e.kvBytes + e.computeBytes; // what llama-server's breakdown counts
        const err = (est - real) / real;
        worst = Math.max(worst, Math.abs(err));
        const dev = r.devices();
        const part = (k: "modelBytes" | "contextBytes" | "computeBytes") => (dev.reduce((n, d) => n + d[k], 0) / MiB).toFixed(2);
        rows.push(
          `${name.padEnd(32)} ${args.join(" ").padEnd(28)} est ${(est / MiB).toFixed(2).padStart(8)} MiB` +
            ` (w ${(e.weightsBytes / MiB).toFixed(2)} kv ${(e.kvBytes / MiB).toFixed(2)} c ${(e.computeBytes / MiB).toFixed(2)})` +
            `  real ${(real / MiB).toFixed(2).padStart(8)} MiB (w ${part("modelBytes")} kv ${part("contextBytes")} c ${part("computeBytes")})` +
            `  ${(err * 100 >= 0 ? "+" : "") + (err * 100).toFixed(1)} %`,
        );
      }
    }
    console.log(`estimate vs llama-server's report:\n${rows.join("\n")}\nworst error ${(worst * 100).toFixed(1)} %`);
    expect(worst).toBeLessThan(0.1);
  }, 300_000);
});

describe.skipIf(!enabled)("eviction by memory with real llama-servers", () => {
  let srv: RunningServer;
  let client: OpenAI;
  let sub: string;

  beforeAll(async () => {
    sub = mkdtempSync(join(tmpdir(), "lap-memreal-proxy-"));
    await run(["python3", TOOL, SRC, join(sub, "one.gguf"), "2", "64", "f32", "4", "4", "2048"]);
    await run(["python3", TOOL, SRC, join(sub, "two.gguf"), "2", "64", "f32", "4", "2", "2048"]);
    srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: sub, configPath: join(sub, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" });
    srv.services.config.update({
      ...srv.services.config.get(),
      serverPath: BIN!,
      host: "127.0.0.1",
      port: 28000 + Math.floor(Math.random() * 4000),
      ctx_size: 1024,
      threads: 2,
      gpu_layers: 0,
      maxLoadedModels: 0,
      // One model needs ~18 MiB: one fits in 30 MiB, two do not.
      memoryLimitMiB: 30,
    });
    srv.services.registry.insert([
      { id: "one", name: "one", path: join(sub, "one.gguf"), size: 1 },
      { id: "two", name: "two", path: join(sub, "two.gguf"), size: 1 },
    ]);
    client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
  }, 120_000);

  afterAll(async () => {
    await srv?.stop();
    rmSync(sub, { recursive: true, force: true });
  });

  const state = (id: string) => srv.services.supervisor.runtimeOf(id)?.state ?? "stopped";

  test("the second model evicts the first when both do not fit; both stay when they do; no request fails", async () => {
    const ask = (model: string) => client.completions.create({ model, prompt: "Hello", max_tokens: 4, temperature: 0 });
    expect((await ask("one")).choices).toHaveLength(1);
    expect(state("one")).toBe("running");
    expect((await ask("two")).choices).toHaveLength(1);
    expect(state("two")).toBe("running");
    expect(state("one")).toBe("stopped");
    // What llama-server reported was stored and is what the plan counts now.
    const measured = srv.services.memory.view(srv.services.registry.get("two")!).measuredBytes!;
    expect(measured).toBeGreaterThan(15 * MiB);
    expect(measured).toBeLessThan(30 * MiB);

    srv.services.config.update({ ...srv.services.config.get(), memoryLimitMiB: 80 });
    expect((await ask("one")).choices).toHaveLength(1);
    expect(state("one")).toBe("running");
    expect(state("two")).toBe("running");
    expect(srv.services.requests.snapshot().errors).toBe(0);
  }, 120_000);
});
