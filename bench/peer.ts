// bench/peer: the same streaming chat request sent to llama-server directly, to the proxy that
// runs the model (B), and to a proxy that has B as a peer (A -> B: one peer hop), alternated
// direct, B, A, direct, B, A ...; prints time to first byte (median, p99), throughput (SSE events/s
// over the whole request, first byte included: a rate counted from the first byte would favour a
// path that holds the first byte back while events pile up behind it) and the ratios of each path
// to direct and of the peer hop to B.
//
//   LLAMA_SERVER_BIN=... LLAMA_TEST_MODEL=... bun bench/peer.ts [rounds=25] [max_tokens=128,512]
//
// Without LLAMA_SERVER_BIN/LLAMA_TEST_MODEL it falls back to the fake llama-server (the figures
// then measure only the proxies' overhead on a synthetic stream, and say so).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { writeModel } from "../tests/fixtures/gguf-writer";
import { LineWatcher } from "../tests/helpers/process";
import { readSseEvents } from "./sse";

const ROOT = resolve(import.meta.dir, "..");
const rounds = Number(process.argv[2] ?? 25);
const tokenCounts = (process.argv[3] ?? "128,512").split(",").map(Number);
const realBin = process.env.LLAMA_SERVER_BIN;
const realModel = process.env.LLAMA_TEST_MODEL;
const useReal = !!(realBin && realModel);
const dir = mkdtempSync(join(tmpdir(), "lap-bench-peer-"));
const children: Array<{ kill(sig?: number | NodeJS.Signals): void; exited: Promise<number> }> = [];

async function spawnProxy(name: string): Promise<string> {
  const proc = Bun.spawn(["bun", "src/main.ts", "--port", "0", "--data-dir", join(dir, name), "--log-level", "error"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  children.push(proc);
  const out = new LineWatcher(proc.stdout as ReadableStream<Uint8Array>);
  void new LineWatcher(proc.stderr as ReadableStream<Uint8Array>);
  return (await out.wait(/listening on (http:\/\/\S+)/, 30_000))[1]!.replace(/\/$/, "");
}

async function api(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body ? JSON.stringify(body) : method === "GET" ? undefined : "{}" });
  const json = (await res.json()) as any;
  if (!json.success) throw new Error(`${method} ${path}: ${JSON.stringify(json.error)}`);
  return json.data;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const median = (xs: number[]) => pct(xs, 50);

let resets = 0;
/** Per-path request headers (llama-server itself wants its child key). */
const authOf = new Map<string, string>();

async function measure(base: string, maxTokens: number): Promise<{ ttfb: number; rate: number }> {
  try {
    const body = JSON.stringify({ model: "bench", messages: [{ role: "user", content: "Write a long story about a lighthouse." }], max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true });
    const t0 = performance.now();
    const res = await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...(authOf.has(base) ? { authorization: `Bearer ${authOf.get(base)}` } : {}) }, body });
    if (res.status !== 200) throw new Error(`status ${res.status} from ${base}: ${(await res.text()).slice(0, 300)}`);
    const { first, events } = await readSseEvents(res);
    return { ttfb: first - t0, rate: events / ((performance.now() - t0) / 1000) };
  } catch (err) {
    // A stale keep-alive socket closed by llama-server before any answer: retried, unmeasured.
    if ((err as { code?: string }).code !== "ECONNRESET") throw err;
    resets++;
    return measure(base, maxTokens);
  }
}

try {
  const modelPath = useReal ? realModel! : join(dir, "fake.gguf");
  if (!useReal) writeModel(modelPath, { arch: "llama", name: "bench", fileType: 15, contextLength: 2048 });
  console.log(useReal ? `real llama-server: ${realBin}\nmodel: ${realModel}` : "LLAMA_SERVER_BIN/LLAMA_TEST_MODEL unset: using the FAKE llama-server (proxy overhead only)");

  // B runs the model; A has no model of its own and B as its only peer.
  const b = await spawnProxy("b");
  const cfgB = await api(b, "GET", "/api/config");
  await api(b, "POST", "/api/config", { ...cfgB, serverPath: useReal ? realBin : join(ROOT, "tests/fixtures/fake-llama-server.ts"), host: "127.0.0.1", port: 28000 + Math.floor(Math.random() * 1000), ctx_size: 2048 });
  await api(b, "POST", "/api/models", { models: [{ name: "bench", path: modelPath, settings: { extraArgs: ["-np", "1"] } }] });
  await api(b, "POST", "/api/models/bench/start");
  const running = await api(b, "GET", "/api/models/bench");
  const direct = `http://127.0.0.1:${running.port}`;
  // The supervisor gives each llama-server its own key, in its environment (LLAMA_API_KEY); the
  // bench runs as the same user and reads it there to talk to llama-server directly.
  const env = (await Bun.file(`/proc/${running.pid}/environ`).text()).split("\0");
  const childKey = env.find((e) => e.startsWith("LLAMA_API_KEY="))?.slice("LLAMA_API_KEY=".length);
  if (childKey) authOf.set(direct, childKey);
  const a = await spawnProxy("a");
  const cfgA = await api(a, "GET", "/api/config");
  await api(a, "POST", "/api/config", { ...cfgA, peers: [{ name: "b", url: b }] });
  await api(a, "POST", "/api/peers/b/check");
  const peerState = (await api(a, "GET", "/api/peers")).peers[0];
  if (peerState.state !== "up" || !peerState.models.some((m: { id: string }) => m.id === "bench")) throw new Error(`peer b not usable: ${JSON.stringify(peerState)}`);

  const paths: Array<[string, string]> = [["direct", direct], ["proxy B", b], ["A -> B", a]];
  for (const maxTokens of tokenCounts) {
    for (const [, base] of paths) for (let i = 0; i < 3; i++) await measure(base, maxTokens); // warm-up
    const results = new Map(paths.map(([name]) => [name, { ttfb: [] as number[], rate: [] as number[] }]));
    for (let r = 0; r < rounds; r++) {
      for (const [name, base] of paths) {
        const m = await measure(base, maxTokens);
        results.get(name)!.ttfb.push(m.ttfb);
        results.get(name)!.rate.push(m.rate);
      }
    }
    const d = results.get("direct")!;
    const viaB = results.get("proxy B")!;
    console.log(`\nmax_tokens ${maxTokens}, ${rounds} rounds (medians; throughput in SSE events/s over the whole request; ratios per round, then the median)`);
    console.log("path        TTFB p50   TTFB p99   added p50   events/s   vs direct   vs proxy B");
    for (const [name] of paths) {
      const x = results.get(name)!;
      const added = median(x.ttfb) - median(d.ttfb);
      const vsDirect = median(x.rate.map((v, i) => v / d.rate[i]!));
      const vsB = median(x.rate.map((v, i) => v / viaB.rate[i]!));
      console.log(
        `${name.padEnd(10)} ${median(x.ttfb).toFixed(2).padStart(8)}ms ${pct(x.ttfb, 99).toFixed(2).padStart(8)}ms ${(name === "direct" ? "" : (added >= 0 ? "+" : "") + added.toFixed(2) + "ms").padStart(10)} ${median(x.rate).toFixed(0).padStart(10)} ${vsDirect.toFixed(3).padStart(10)} ${vsB.toFixed(3).padStart(11)}`,
      );
    }
    const hop = median(results.get("A -> B")!.ttfb) - median(viaB.ttfb);
    console.log(`one peer hop adds ${hop >= 0 ? "+" : ""}${hop.toFixed(2)} ms to TTFB (median), throughput ${median(results.get("A -> B")!.rate.map((v, i) => v / viaB.rate[i]!)).toFixed(3)}x of proxy B`);
  }
  console.log(`\n(client-side stale keep-alive resets retried: ${resets})`);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
  rmSync(dir, { recursive: true, force: true });
}
