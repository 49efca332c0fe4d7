// bench/proxy: the same streaming chat request sent direct to llama-server, through our proxy,
// through the naive Bun passthrough and through nginx (when installed), alternated A B C D A B C D
// ..., reporting time to first byte (median, p99), throughput (SSE events/s) relative to direct,
// and the CPU time each proxy process spends per streamed event (all its threads, from
// /proc/<pid>/task/*/schedstat: the stable figure on a shared machine, where TTFB is the noisy
// one; for nginx its worker process).
//
// Then the concurrency cases (skip with --no-concurrency, run alone with --concurrency-only):
//   - 16 concurrent streams to one model started with -np 4;
//   - 4 models x 4 concurrent streams (16 in all);
// per path: aggregate events/s against direct in the same round, TTFB p50/p99 and added p99,
// CPU per event.
//
//   LLAMA_SERVER_BIN=... LLAMA_TEST_MODEL=... bun bench/proxy.ts [rounds=25] [max_tokens=128,512] [--no-concurrency|--concurrency-only] [--concurrency-rounds=8] [--exe label=path ...]
//
// --exe adds another build of the proxy (a compiled executable, e.g. of an older commit) to the
// sequential rounds: it runs its own llama-server (its own "direct@label" path, which its
// throughput ratio is taken against), so before/after CPU per event come from one run. Each
// proxy's idle CPU (timers, metrics sampling) is measured first and printed, since it is counted
// in CPU/event too.
//
// Without LLAMA_SERVER_BIN/LLAMA_TEST_MODEL it falls back to the fake llama-server (the figures
// then measure only proxy overhead on a synthetic stream, and say so; --fake-delay=N paces its
// tokens N ms apart, one event per chunk as llama-server sends them).
import { copyFileSync, linkSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { writeModel } from "../tests/fixtures/gguf-writer";
import { LineWatcher } from "../tests/helpers/process";
import { readSseEvents } from "./sse";

const ROOT = resolve(import.meta.dir, "..");
const positional = process.argv.slice(2).filter((a, i, all) => !a.startsWith("--") && all[i - 1] !== "--exe");
const extraExes: Array<[string, string]> = [];
process.argv.forEach((a, i) => {
  if (a === "--exe") {
    const [label, path] = process.argv[i + 1]!.split("=");
    extraExes.push([label!, resolve(path!)]);
  }
});
const rounds = Number(positional[0] ?? 25);
const tokenCounts = (positional[1] ?? "128,512").split(",").map(Number);
const flagValue = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const concurrencyRounds = Number(flagValue("concurrency-rounds") ?? 8);
const runSequential = !process.argv.includes("--concurrency-only");
const runConcurrency = !process.argv.includes("--no-concurrency");
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
  return { url: m[1]!.replace(/\/$/, ""), pid: proc.pid };
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

/** CPU time (ms) of every thread of a process: Bun's HTTP client and server run on different threads. */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e6;
}

/** The nginx worker: the child of the master we started (`worker_processes 1`). */
function childPid(pid: number): number {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  if (kids.length !== 1) throw new Error(`expected one nginx worker under ${pid}, found ${kids.length}`);
  return kids[0]!;
}

interface Measured {
  ttfb: number;
  rate: number;
  events: number;
  start: number;
  end: number;
}

/** One measured request; a stale keep-alive socket (ECONNRESET before any answer) is retried, unmeasured. */
async function measure(base: string, maxTokens: number, model = "bench", headers: Record<string, string> = {}): Promise<Measured> {
  try {
    return await measureOnce(base, maxTokens, model, headers);
  } catch (err) {
    if ((err as { code?: string }).code !== "ECONNRESET") throw err;
    resets++;
    return measure(base, maxTokens, model, headers);
  }
}
let resets = 0;

async function measureOnce(base: string, maxTokens: number, model: string, headers: Record<string, string>): Promise<Measured> {
  const body = JSON.stringify({
    model,
    messages: [{ role: "user", content: "Write a long story about a lighthouse." }],
    max_tokens: maxTokens,
    temperature: 0,
    ignore_eos: true,
    stream: true,
  });
  const t0 = performance.now();
  // Bounded: a request that hangs fails the run instead of stalling it.
  const res = await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body, signal: AbortSignal.timeout(120_000) });
  if (res.status !== 200) throw new Error(`status ${res.status} from ${base}: ${(await res.text()).slice(0, 300)}`);
  const { first, events } = await readSseEvents(res);
  const end = performance.now();
  return { ttfb: first - t0, rate: events / ((end - first) / 1000), events, start: t0, end };
}

/** A path to measure: where to send each model's requests, and whose CPU to count (if any). */
interface Path {
  name: string;
  base: (model: string) => string;
  pid?: number;
  /** The direct path its throughput is compared with (default "direct"). */
  ref?: string;
  /** Extra request headers per model (the child's API key, for the paths that reach it unproxied). */
  headers?: (model: string) => Record<string, string>;
}

/**
 * The API key the supervisor gave the child serving `port` (it is in the child's environment,
 * LLAMA_API_KEY; builds before child keys have none): what direct, naive and nginx requests must
 * carry now that llama-server answers 401 without it.
 */
function childAuth(dataDir: string, port: string): Record<string, string> {
  try {
    const { children } = JSON.parse(readFileSync(join(dataDir, "llama-servers.json"), "utf8")) as { children: Array<{ pid: number; port: number }> };
    const child = children.find((c) => String(c.port) === port);
    if (!child) return {};
    const env = readFileSync(`/proc/${child.pid}/environ`, "utf8").split("\0");
    const key = env.find((e) => e.startsWith("LLAMA_API_KEY="))?.slice("LLAMA_API_KEY=".length);
    return key ? { authorization: `Bearer ${key}` } : {};
  } catch {
    return {};
  }
}

/** A proxy process's CPU while idle (ms of CPU per second): its timers and metrics sampling. */
async function idleCpuRate(pid: number, ms = 3000): Promise<number> {
  const c0 = cpuMs(pid);
  await Bun.sleep(ms);
  return ((cpuMs(pid) - c0) * 1000) / ms;
}

function nginxConf(upstreams: Array<{ listen: number; upstream: string }>): string {
  const blocks = upstreams
    .map(
      (u, i) => `  upstream llama${i} { server ${u.upstream}; keepalive 16; }
  server { listen 127.0.0.1:${u.listen};
    location / { proxy_pass http://llama${i}; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; proxy_cache off; proxy_read_timeout 600s; } }`,
    )
    .join("\n");
  return `daemon off; worker_processes 1; pid ${dir}/nginx-${upstreams[0]!.listen}.pid; error_log ${dir}/nginx.err;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir};
${blocks} }`;
}

/** Starts an nginx (shared/BENCHMARKS.md's configuration) in front of each upstream; returns its worker's pid and the URLs. */
async function startNginx(upstreams: string[]): Promise<{ pid: number; urls: string[] }> {
  const base = 29000 + Math.floor(Math.random() * 900);
  const listen = upstreams.map((u, i) => ({ listen: base + i, upstream: u.replace("http://", "") }));
  const conf = join(dir, `nginx-${base}.conf`);
  writeFileSync(conf, nginxConf(listen));
  const master = Bun.spawn(["nginx", "-c", conf], { stdout: "ignore", stderr: "ignore" });
  children.push(master);
  const urls = listen.map((l) => `http://127.0.0.1:${l.listen}`);
  const deadline = Date.now() + 5000;
  for (const url of urls) {
    while (Date.now() < deadline && !(await fetch(`${url}/health`).then((r) => r.ok, () => false))) await Bun.sleep(20);
  }
  return { pid: childPid(master.pid), urls };
}

/** CPU of a path's process over `fn`, in ms (0 for direct: llama-server's own is not a proxy's). */
async function withCpu<T>(path: Path, fn: () => Promise<T>): Promise<{ result: T; cpu: number }> {
  const c0 = path.pid ? cpuMs(path.pid) : 0;
  const result = await fn();
  return { result, cpu: path.pid ? cpuMs(path.pid) - c0 : 0 };
}

function fmtUs(cpuMsTotal: number, events: number): string {
  return events ? ((cpuMsTotal * 1000) / events).toFixed(1) : "-";
}

async function sequential(paths: Path[]) {
  for (const maxTokens of tokenCounts) {
    for (const p of paths) for (let i = 0; i < 3; i++) await measure(p.base("bench"), maxTokens, "bench", p.headers?.("bench")); // warm-up
    const results = new Map(paths.map((p) => [p.name, { ttfb: [] as number[], rate: [] as number[], cpu: 0, events: 0 }]));
    for (let r = 0; r < rounds; r++) {
      for (const p of paths) {
        const { result: m, cpu } = await withCpu(p, () => measure(p.base("bench"), maxTokens, "bench", p.headers?.("bench")));
        const x = results.get(p.name)!;
        x.ttfb.push(m.ttfb);
        x.rate.push(m.rate);
        x.cpu += cpu;
        x.events += m.events;
      }
    }
    console.log(`\nmax_tokens ${maxTokens}, ${rounds} rounds (medians; throughput in SSE events/s; CPU of the proxy process per event)`);
    console.log("path          TTFB p50   TTFB p99   added p50   events/s   vs direct   CPU/event");
    for (const p of paths) {
      const x = results.get(p.name)!;
      const d = results.get(p.ref ?? "direct")!;
      const added = median(x.ttfb) - median(d.ttfb);
      // Per-round ratios, so slow rounds (the machine is shared) hit every path alike.
      const ratios = x.rate.map((v, i) => v / d.rate[i]!);
      console.log(
        `${p.name.padEnd(12)} ${median(x.ttfb).toFixed(2).padStart(8)}ms ${pct(x.ttfb, 99).toFixed(2).padStart(8)}ms ${(p.name.startsWith("direct") ? "" : (added >= 0 ? "+" : "") + added.toFixed(2) + "ms").padStart(10)} ${median(x.rate).toFixed(0).padStart(10)} ${median(ratios).toFixed(3).padStart(10)} ${(p.pid ? fmtUs(x.cpu, x.events) + "us" : "").padStart(11)}`,
      );
    }
  }
}

/**
 * `streams` concurrent streams per round, spread over `models`, for each path in turn; the
 * aggregate rate of a round is every event of it over the time from the first request to the
 * last end.
 */
async function concurrent(label: string, paths: Path[], models: string[], perModel: number, maxTokens: number) {
  const one = async (p: Path) => {
    const t0 = performance.now();
    const { result: all, cpu } = await withCpu(p, () => Promise.all(models.flatMap((m) => Array.from({ length: perModel }, () => measure(p.base(m), maxTokens, m, p.headers?.(m))))));
    const events = all.reduce((n, m) => n + m.events, 0);
    const end = Math.max(...all.map((m) => m.end));
    return { rate: events / ((end - t0) / 1000), ttfb: all.map((m) => m.ttfb), cpu, events };
  };
  for (const p of paths) await one(p); // warm-up
  const results = new Map(paths.map((p) => [p.name, { rate: [] as number[], ttfb: [] as number[], cpu: 0, events: 0 }]));
  for (let r = 0; r < concurrencyRounds; r++) {
    for (const p of r % 2 ? paths : [...paths].reverse()) {
      const m = await one(p);
      const x = results.get(p.name)!;
      x.rate.push(m.rate);
      x.ttfb.push(...m.ttfb);
      x.cpu += m.cpu;
      x.events += m.events;
    }
  }
  const d = results.get("direct")!;
  console.log(`\n${label}: ${models.length * perModel} concurrent streams, max_tokens ${maxTokens}, ${concurrencyRounds} rounds`);
  console.log("path        aggregate ev/s   vs direct   TTFB p50   TTFB p99   added p99   CPU/event");
  for (const p of paths) {
    const x = results.get(p.name)!;
    const ratios = x.rate.map((v, i) => v / d.rate[i]!);
    const added = pct(x.ttfb, 99) - pct(d.ttfb, 99);
    console.log(
      `${p.name.padEnd(10)} ${median(x.rate).toFixed(0).padStart(14)} ${median(ratios).toFixed(3).padStart(11)} ${median(x.ttfb).toFixed(1).padStart(8)}ms ${pct(x.ttfb, 99).toFixed(1).padStart(8)}ms ${(p.name === "direct" ? "" : (added >= 0 ? "+" : "") + added.toFixed(1) + "ms").padStart(10)} ${(p.pid ? fmtUs(x.cpu, x.events) + "us" : "").padStart(11)}`,
    );
  }
}

try {
  const fake = join(ROOT, "tests/fixtures/fake-llama-server.ts");
  const modelPath = useReal ? realModel! : join(dir, "fake.gguf");
  if (!useReal) writeModel(modelPath, { arch: "llama", name: "bench", fileType: 15, contextLength: 4096 });
  console.log(useReal ? `real llama-server: ${realBin}\nmodel: ${realModel}` : "LLAMA_SERVER_BIN/LLAMA_TEST_MODEL unset: using the FAKE llama-server (proxy overhead only)");
  // --fake-delay=N paces the fake server's tokens (one SSE event per chunk, like the real one).
  const fakeArgs = useReal ? [] : ["--fake-token-delay-ms", flagValue("fake-delay") ?? "0"];

  const proxy = await spawnListening(["bun", "src/main.ts", "--port", "0", "--data-dir", join(dir, "data"), "--log-level", "error"]);
  const cfg = await api(proxy.url, "GET", "/api/config");
  await api(proxy.url, "POST", "/api/config", { ...cfg, serverPath: useReal ? realBin : fake, host: "127.0.0.1", port: 28000 + Math.floor(Math.random() * 900), ctx_size: 2048, maxLoadedModels: 4 });
  const models = ["bench", "bench2", "bench3", "bench4"];
  // One file per model (the registry refuses a path twice): hard links, or copies across filesystems.
  const pathOf = (name: string, i: number) => {
    if (i === 0) return modelPath;
    const p = join(dir, `${name}.gguf`);
    try {
      linkSync(modelPath, p);
    } catch {
      copyFileSync(modelPath, p);
    }
    return p;
  };
  await api(proxy.url, "POST", "/api/models", { models: models.map((name, i) => ({ name, path: pathOf(name, i) })) });
  const portOf = async (id: string) => `http://127.0.0.1:${(await api(proxy.url, "GET", "/api/models")).models.find((m: any) => m.id === id).port}`;
  const authOf = (dataDir: string, url: string) => childAuth(dataDir, url.split(":").at(-1)!);
  const nginx = Bun.which("nginx");
  if (!nginx) console.log("nginx not installed: its rows are missing (apt-get install nginx-light)");

  if (runSequential) {
    await api(proxy.url, "PATCH", "/api/models/bench", { settings: { extraArgs: ["-np", "1", ...fakeArgs] } });
    await api(proxy.url, "POST", "/api/models/bench/start");
    const direct = await portOf("bench");
    const key = authOf(join(dir, "data"), direct);
    const naive = await spawnListening(["bun", "bench/naive-proxy.ts", direct]);
    const paths: Path[] = [
      { name: "direct", base: () => direct, headers: () => key },
      { name: "proxy", base: () => proxy.url, pid: proxy.pid },
      { name: "naive-bun", base: () => naive.url, pid: naive.pid, headers: () => key },
    ];
    if (nginx) {
      const n = await startNginx([direct]);
      paths.push({ name: "nginx", base: () => n.urls[0]!, pid: n.pid, headers: () => key });
    }
    // Other builds of the proxy, each with its own llama-server (same model, same settings).
    for (const [label, exe] of extraExes) {
      const other = await spawnListening([exe, "--port", "0", "--data-dir", join(dir, `data-${label}`), "--log-level", "error"]);
      const ocfg = await api(other.url, "GET", "/api/config");
      await api(other.url, "POST", "/api/config", { ...ocfg, serverPath: useReal ? realBin : fake, host: "127.0.0.1", port: 27000 + Math.floor(Math.random() * 900), ctx_size: 2048 });
      await api(other.url, "POST", "/api/models", { models: [{ name: "bench", path: pathOf(`bench-${label}`, 1) }] });
      await api(other.url, "PATCH", "/api/models/bench", { settings: { extraArgs: ["-np", "1", ...fakeArgs] } });
      await api(other.url, "POST", "/api/models/bench/start");
      const odirect = `http://127.0.0.1:${(await api(other.url, "GET", "/api/models")).models.find((m: any) => m.id === "bench").port}`;
      const okey = authOf(join(dir, `data-${label}`), odirect);
      paths.push({ name: `direct@${label}`, base: () => odirect, headers: () => okey }, { name: label, base: () => other.url, pid: other.pid, ref: `direct@${label}` });
    }
    const idle = await Promise.all(paths.filter((p) => p.pid).map(async (p) => `${p.name} ${(await idleCpuRate(p.pid!)).toFixed(2)}`));
    console.log(`idle CPU, ms per second (counted in CPU/event too): ${idle.join(", ")}`);
    await sequential(paths);
    await api(proxy.url, "POST", "/api/models/bench/stop");
  }

  if (runConcurrency) {
    const maxTokens = tokenCounts[0]!;
    // -np 4 splits the context in four slots: 4096 leaves each 1024, room for prompt + 512 tokens.
    for (const id of models) await api(proxy.url, "PATCH", `/api/models/${id}`, { settings: { ctxSize: 4096, extraArgs: ["-np", "4", ...fakeArgs] } });
    await api(proxy.url, "POST", "/api/models/bench/start");
    const direct1 = await portOf("bench");
    const key1 = authOf(join(dir, "data"), direct1);
    const paths1: Path[] = [{ name: "direct", base: () => direct1, headers: () => key1 }, { name: "proxy", base: () => proxy.url, pid: proxy.pid }];
    if (nginx) {
      const n = await startNginx([direct1]);
      paths1.push({ name: "nginx", base: () => n.urls[0]!, pid: n.pid, headers: () => key1 });
    }
    await concurrent("one model, -np 4", paths1, ["bench"], 16, maxTokens);

    for (const id of models.slice(1)) await api(proxy.url, "POST", `/api/models/${id}/start`);
    const directs = new Map<string, string>();
    for (const id of models) directs.set(id, await portOf(id));
    const keys = new Map(models.map((m) => [m, authOf(join(dir, "data"), directs.get(m)!)]));
    const paths4: Path[] = [{ name: "direct", base: (m) => directs.get(m)!, headers: (m) => keys.get(m)! }, { name: "proxy", base: () => proxy.url, pid: proxy.pid }];
    if (nginx) {
      const n = await startNginx(models.map((m) => directs.get(m)!));
      paths4.push({ name: "nginx", base: (m) => n.urls[models.indexOf(m)]!, pid: n.pid, headers: (m) => keys.get(m)! });
    }
    await concurrent("4 models x 4 streams, -np 4 each", paths4, models, 4, maxTokens);
  }
  console.log(`\n(client-side stale keep-alive resets retried: ${resets})`);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
  rmSync(dir, { recursive: true, force: true });
}
