// bench/ollama: what Ollama's API costs on top of the OpenAI path. The same streamed chat sent
// direct to llama-server (SSE), through the proxy's /v1/chat/completions (SSE passed through) and
// through the proxy's /api/chat (SSE translated to NDJSON line by line), alternated A B C A B C...
// Reports time to the first token (median, p99), the time Ollama's path adds over the SSE path,
// and token throughput relative to direct (median of per-round ratios, so a slow moment of the
// shared machine hits every path alike).
//
//   LLAMA_SERVER_BIN=... LLAMA_TEST_MODEL=... bun bench/ollama.ts [rounds=25] [tokens=128,512]
//
// Without LLAMA_SERVER_BIN/LLAMA_TEST_MODEL it uses the fake llama-server (then the figures are
// the proxies' own cost on a synthetic stream, and it says so).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { writeModel } from "../tests/fixtures/gguf-writer";
import { LineWatcher } from "../tests/helpers/process";

const ROOT = resolve(import.meta.dir, "..");
const rounds = Number(process.argv[2] ?? 25);
const tokenCounts = (process.argv[3] ?? "128,512").split(",").map(Number);
const realBin = process.env.LLAMA_SERVER_BIN;
const realModel = process.env.LLAMA_TEST_MODEL;
const useReal = !!(realBin && realModel);
const dir = mkdtempSync(join(tmpdir(), "lap-bench-ollama-"));
const children: Array<{ kill(sig?: number | NodeJS.Signals): void; exited: Promise<number> }> = [];

async function spawnListening(cmd: string[]) {
  const proc = Bun.spawn(cmd, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  children.push(proc);
  const out = new LineWatcher(proc.stdout as ReadableStream<Uint8Array>);
  void new LineWatcher(proc.stderr as ReadableStream<Uint8Array>);
  const m = await out.wait(/listening on (http:\/\/\S+)/, 30_000);
  return m[1]!.replace(/\/$/, "");
}

async function api(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
  const json = (await res.json()) as { success: boolean; data: any; error: unknown };
  if (!json.success) throw new Error(`${method} ${path}: ${JSON.stringify(json.error)}`);
  return json.data;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);

type Kind = "sse" | "ndjson";
interface Sample { ttft: number; rate: number; tokens: number }

/** One streamed request; time to the first token and tokens/s after it. Stale keep-alive resets are retried, unmeasured. */
async function measure(url: string, kind: Kind, tokens: number): Promise<Sample> {
  try {
    return await measureOnce(url, kind, tokens);
  } catch (err) {
    if ((err as { code?: string }).code !== "ECONNRESET") throw err;
    resets++;
    return measure(url, kind, tokens);
  }
}
let resets = 0;
/** Headers for the direct path (the child's own API key). */
const directHeaders: Record<string, string> = {};
let directBase = "direct:unset";

async function measureOnce(url: string, kind: Kind, tokens: number): Promise<Sample> {
  const messages = [{ role: "user", content: "Write a long story about a lighthouse." }];
  const body =
    kind === "sse"
      ? { model: "bench", messages, max_tokens: tokens, temperature: 0, ignore_eos: true, stream: true }
      // Ollama's request; ignore_eos is not an Ollama option, so the model may stop early: the
      // rate is per token actually received, and the token count is printed.
      : { model: "bench", messages, options: { num_predict: tokens, temperature: 0 }, stream: true };
  const t0 = performance.now();
  const headers = { "content-type": "application/json", ...(url.startsWith(directBase) ? directHeaders : {}) };
  const res = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`status ${res.status} from ${url}: ${(await res.text()).slice(0, 300)}`);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let carry = "";
  let first = 0;
  let count = 0;
  const sep = kind === "sse" ? "\n\n" : "\n";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    carry += dec.decode(value, { stream: true });
    let i;
    while ((i = carry.indexOf(sep)) >= 0) {
      const event = carry.slice(0, i);
      carry = carry.slice(i + sep.length);
      // A token: an SSE delta with content, an NDJSON line that is not the done line.
      const isToken = kind === "sse" ? event.includes('"content":"') : event.includes('"done":false');
      if (!isToken) continue;
      count++;
      if (!first) first = performance.now();
    }
  }
  const end = performance.now();
  return { ttft: first - t0, rate: count > 1 ? (count - 1) / ((end - first) / 1000) : 0, tokens: count };
}

try {
  const fake = join(ROOT, "tests/fixtures/fake-llama-server.ts");
  const modelPath = useReal ? realModel! : join(dir, "fake.gguf");
  if (!useReal) writeModel(modelPath, { arch: "llama", name: "bench", fileType: 15, contextLength: 2048 });
  console.log(useReal ? `real llama-server: ${realBin}\nmodel: ${realModel}` : "LLAMA_SERVER_BIN/LLAMA_TEST_MODEL unset: using the FAKE llama-server (proxy overhead only)");

  const proxy = await spawnListening(["bun", "src/main.ts", "--port", "0", "--data-dir", join(dir, "data"), "--log-level", "error"]);
  const cfg = await api(proxy, "GET", "/api/config");
  await api(proxy, "POST", "/api/config", { ...cfg, serverPath: useReal ? realBin : fake, host: "127.0.0.1", port: 28000 + Math.floor(Math.random() * 1000), ctx_size: 2048 });
  await api(proxy, "POST", "/api/models", { models: [{ name: "bench", path: modelPath, settings: { extraArgs: ["-np", "1"] } }] });
  await api(proxy, "POST", "/api/models/bench/start");
  const models = await api(proxy, "GET", "/api/models");
  const bench = models.models.find((m: { id: string }) => m.id === "bench");
  const direct = `http://127.0.0.1:${bench.port}`;
  directBase = direct;
  // The child runs with a per-start API key in its environment (src/supervisor/child-keys.ts);
  // the direct path reads it from /proc, as only the proxy's own process knows it otherwise.
  const environ = await Bun.file(`/proc/${bench.pid}/environ`).text().catch(() => "");
  const childKey = environ.split("\0").find((e) => e.startsWith("LLAMA_API_KEY="))?.slice("LLAMA_API_KEY=".length);
  if (childKey) directHeaders.authorization = `Bearer ${childKey}`;

  const paths: Array<[string, string, Kind]> = [
    ["direct SSE", `${direct}/v1/chat/completions`, "sse"],
    ["proxy /v1 SSE", `${proxy}/v1/chat/completions`, "sse"],
    ["proxy /api/chat", `${proxy}/api/chat`, "ndjson"],
  ];
  for (const tokens of tokenCounts) {
    for (const [, url, kind] of paths) for (let i = 0; i < 3; i++) await measure(url, kind, tokens); // warm-up
    const results = new Map(paths.map(([name]) => [name, [] as Sample[]]));
    for (let r = 0; r < rounds; r++) for (const [name, url, kind] of paths) results.get(name)!.push(await measure(url, kind, tokens));
    const d = results.get("direct SSE")!;
    const sse = results.get("proxy /v1 SSE")!;
    console.log(`\n${tokens} tokens asked, ${rounds} rounds (medians)`);
    console.log("path              TTFT p50   TTFT p99   vs direct   vs /v1 SSE   tokens/s   rate vs direct   tokens");
    for (const [name] of paths) {
      const x = results.get(name)!;
      const ttft = x.map((s) => s.ttft);
      const added = (ref: Sample[]) => median(x.map((s, i) => s.ttft - ref[i]!.ttft));
      const fmt = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(2)}ms`;
      const ratios = x.map((s, i) => s.rate / d[i]!.rate);
      console.log(
        `${name.padEnd(16)} ${median(ttft).toFixed(2).padStart(8)}ms ${pct(ttft, 99).toFixed(2).padStart(8)}ms ${(name === "direct SSE" ? "" : fmt(added(d))).padStart(11)} ${(name === "proxy /api/chat" ? fmt(added(sse)) : "").padStart(12)} ${median(x.map((s) => s.rate)).toFixed(0).padStart(10)} ${median(ratios).toFixed(3).padStart(16)} ${median(x.map((s) => s.tokens)).toFixed(0).padStart(8)}`,
      );
    }
  }
  console.log(`\n(client-side stale keep-alive resets retried: ${resets})`);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
  rmSync(dir, { recursive: true, force: true });
}
