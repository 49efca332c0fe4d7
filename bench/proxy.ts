// bench/proxy: the same streaming chat request sent direct to llama-server, through our proxy,
// and through the naive Bun passthrough (and nginx when installed), alternated A B C A B C ...,
// reporting time to first byte (median, p99) and throughput (SSE events/s) relative to direct.
//
//   LLAMA_SERVER_BIN=... LLAMA_TEST_MODEL=... bun bench/proxy.ts [rounds=25] [max_tokens=128,512]
//
// Without LLAMA_SERVER_BIN/LLAMA_TEST_MODEL it falls back to the fake llama-server (the figures
// then measure only proxy overhead on a synthetic stream, and say so).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
const dir = mkdtempSync(join(tmpdir(), "lap-bench-"));
const children: Array<{ kill(sig?: number | NodeJS.Signals): void; exited: Promise<number> }> = [];

async function spawnListening(cmd: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn(cmd, { cwd: ROOT, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  children.push(proc);
  const out = new LineWatcher(proc.stdout as ReadableStream<Uint8Array>);
  const err = new LineWatcher(proc.stderr as ReadableStream<Uint8Array>);
  const m = await out.wait(/listening on (http:\/\/\S+)/, 30_000);
  void err;
  return m[1]!.replace(/\/$/, "");
}

async function api(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
  const json = (await res.json()) as any;
  if (!json.success) throw new Error(`${method} ${path}: ${JSON.stringify(json.error)}`);
  return json.data;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);

/** One measured request; a stale keep-alive socket (ECONNRESET before any answer) is retried, unmeasured. */
async function measure(base: string, maxTokens: number): Promise<{ ttfb: number; rate: number; events: number }> {
  try {
    return await measureOnce(base, maxTokens);
  } catch (err) {
    if ((err as { code?: string }).code !== "ECONNRESET") throw err;
    resets++;
    return measure(base, maxTokens);
  }
}
let resets = 0;

async function measureOnce(base: string, maxTokens: number) {
  const body = JSON.stringify({
    model: "bench",
    messages: [{ role: "user", content: "Write a long story about a lighthouse." }],
    max_tokens: maxTokens,
    temperature: 0,
    ignore_eos: true,
    stream: true,
  });
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
  if (res.status !== 200) throw new Error(`status ${res.status} from ${base}: ${(await res.text()).slice(0, 300)}`);
  const reader = res.body!.getReader();
  let first = 0;
  let events = 0;
  let carry = "";
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (!first) first = performance.now();
    carry += dec.decode(value, { stream: true });
    let i;
    while ((i = carry.indexOf("\n\n")) >= 0) {
      if (carry.startsWith("data: ")) events++;
      carry = carry.slice(i + 2);
    }
  }
  const end = performance.now();
  if (res.status !== 200) throw new Error(`status ${res.status} from ${base}`);
  return { ttfb: first - t0, rate: events / ((end - first) / 1000), events };
}

try {
  const fake = join(ROOT, "tests/fixtures/fake-llama-server.ts");
  const modelPath = useReal ? realModel! : join(dir, "fake.gguf");
  if (!useReal) writeModel(modelPath, { arch: "llama", name: "bench", fileType: 15, contextLength: 2048 });
  console.log(useReal ? `real llama-server: ${realBin}\nmodel: ${realModel}` : "LLAMA_SERVER_BIN/LLAMA_TEST_MODEL unset: using the FAKE llama-server (proxy overhead only)");

  const proxy = await spawnListening(["bun", "src/main.ts", "--port", "0", "--data-dir", join(dir, "data"), "--log-level", "error"]);
  const cfg = await api(proxy, "GET", "/api/config");
  await api(proxy, "POST", "/api/config", { ...cfg, serverPath: useReal ? realBin : fake, host: "127.0.0.1", port: 28000 + Math.floor(Math.random() * 1000), ctx_size: 2048 });
  await api(proxy, "POST", "/api/models", { models: [{ name: "bench", path: modelPath }] });
  await api(proxy, "PATCH", "/api/models/bench", { settings: { extraArgs: useReal ? ["-np", "1"] : ["-np", "1", "--fake-token-delay-ms", "0"] } }).catch(() => {});
  await api(proxy, "POST", "/api/models/bench/start");
  const models = await api(proxy, "GET", "/api/models");
  const direct = `http://127.0.0.1:${models.models.find((m: any) => m.id === "bench").port}`;
  const naive = await spawnListening(["bun", "bench/naive-proxy.ts", direct]);

  const paths: Array<[string, string]> = [["direct", direct], ["proxy", proxy], ["naive-bun", naive]];
  if (Bun.which("nginx")) {
    const nport = 29000 + Math.floor(Math.random() * 1000);
    const conf = join(dir, "nginx.conf");
    writeFileSync(conf, `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir};
  upstream llama { server ${direct.replace("http://", "")}; keepalive 16; }
  server { listen 127.0.0.1:${nport};
    location / { proxy_pass http://llama; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; proxy_cache off; proxy_read_timeout 600s; } } }`);
    children.push(Bun.spawn(["nginx", "-c", conf], { stdout: "ignore", stderr: "ignore" }));
    const nurl = `http://127.0.0.1:${nport}`;
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !(await fetch(`${nurl}/health`).then((r) => r.ok, () => false))) await Bun.sleep(20);
    paths.push(["nginx", nurl]);
  }

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
    console.log(`\nmax_tokens ${maxTokens}, ${rounds} rounds (medians; throughput in SSE events/s)`);
    console.log("path        TTFB p50   TTFB p99   added p50   events/s   vs direct");
    for (const [name] of paths) {
      const x = results.get(name)!;
      const added = median(x.ttfb) - median(d.ttfb);
      // Per-round ratios, so slow rounds (the machine is shared) hit every path alike.
      const ratios = x.rate.map((v, i) => v / d.rate[i]!);
      console.log(
        `${name.padEnd(10)} ${median(x.ttfb).toFixed(2).padStart(8)}ms ${pct(x.ttfb, 99).toFixed(2).padStart(8)}ms ${(name === "direct" ? "" : (added >= 0 ? "+" : "") + added.toFixed(2) + "ms").padStart(10)} ${median(x.rate).toFixed(0).padStart(10)} ${median(ratios).toFixed(3).padStart(10)}`,
      );
    }
  }
  console.log(`\n(client-side stale keep-alive resets retried: ${resets})`);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
  rmSync(dir, { recursive: true, force: true });
}
