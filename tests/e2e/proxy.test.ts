import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { childAuthHeaders } from "../../src/supervisor/child-keys";
import OpenAI from "openai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { ModelSettings } from "../../src/db/schema";
import { startServer, type RunningServer } from "../../src/server";
import { waitFor } from "../helpers/services";

// The proxy end to end: a real server on port 0, the real supervisor spawning the fake
// llama-server (a real process on a real port), and the real `openai` npm client.
const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");

let dir: string;
let srv: RunningServer;
let client: OpenAI;

function modelFile(name: string): string {
  const p = join(dir, name);
  writeFileSync(p, "GGUF fake weights");
  return p;
}

function register(id: string, settings: ModelSettings = {}) {
  return srv.services.registry.insert([{ id, name: id, path: modelFile(`${id}.gguf`), size: 17, family: "llama", format: "gguf", settings }])[0]!;
}

const status = (id: string) => srv.services.supervisor.runtimeOf(id)?.state ?? "stopped";

async function configure(patch: Record<string, unknown>) {
  srv.services.config.update({ ...srv.services.config.get(), ...patch });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lap-proxy-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let seq = 0;
async function boot(config: Record<string, unknown> = {}) {
  const sub = join(dir, `run${++seq}`);
  srv = await startServer({
    port: 0,
    host: "127.0.0.1",
    dataDir: sub,
    configPath: join(sub, "config.json"),
    logLevel: "error",
    environment: "test",
    quiet: true,
    databasePath: ":memory:",
    proxy: { loadingCommentAfterMs: 150, loadingCommentEveryMs: 100, maxBodyBytes: 256 * 1024 },
  });
  await configure({
    serverPath: FAKE,
    host: "127.0.0.1",
    // Spread test runs over the port range so parallel suites do not race for the same ports.
    port: 20000 + Math.floor(Math.random() * 20000),
    stopTimeoutSeconds: 2,
    maxRestarts: 0,
    ...config,
  });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 20_000 });
}

afterEach(async () => {
  await srv?.stop();
});

describe("routing and on-demand loading", () => {
  test("the openai client gets a chat completion from a model that was not running", async () => {
    await boot();
    register("alpha", { extraArgs: ["--fake-load-ms", "300"] });
    expect(status("alpha")).toBe("stopped");
    const res = await client.chat.completions.create({ model: "alpha", messages: [{ role: "user", content: "hi" }], max_tokens: 5, temperature: 0 });
    expect(res.object).toBe("chat.completion");
    expect(res.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(res.usage!.completion_tokens).toBe(5);
    expect(status("alpha")).toBe("running");
    const perf = (await (await fetch(`${srv.url}/api/status`)).json()).data.performance;
    expect(perf.requests_total).toBe(1);
    expect(perf.error_rate).toBe(0);
    const snap = srv.services.requests.snapshot().perModel.alpha!;
    expect(snap.completionTokens).toBe(5);
    expect(srv.services.registry.get("alpha")!.lastUsed).toBeTruthy();
  });

  test("the openai client streams a chat completion from a model that was not running", async () => {
    await boot();
    register("alpha", { extraArgs: ["--fake-load-ms", "400"] });
    const stream = await client.chat.completions.create({
      model: "alpha",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThanOrEqual(12);
    expect(text.length).toBeGreaterThan(0);
    expect(usage!.completion_tokens).toBe(12);
    expect(srv.services.requests.snapshot().perModel.alpha!.completionTokens).toBe(12);
    expect(srv.services.requests.snapshot().averageTtft).toBeGreaterThan(0);
  });

  test("a model is found by alias and by file name; an unknown one is a 404 in OpenAI's shape", async () => {
    await boot();
    register("alpha", { aliases: ["gpt-4o-mini"] });
    const byAlias = await client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x" }], max_tokens: 2 });
    expect(byAlias.choices).toHaveLength(1);
    const byFile = await client.completions.create({ model: "alpha.gguf", prompt: "x", max_tokens: 2 });
    expect(byFile.choices).toHaveLength(1);
    const err = await client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.status).toBe(404);
    expect(err.error).toMatchObject({ type: "invalid_request_error", code: "model_not_found" });
    expect(err.error.message).toContain("nope");
  });

  test("without `model`, the only running model serves; with several and none running it is a 400", async () => {
    await boot();
    register("alpha");
    register("beta");
    const ambiguous = await fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: [{ role: "user", content: "x" }] }) });
    expect(ambiguous.status).toBe(400);
    expect((await ambiguous.json()).error.message).toContain("alpha, beta");
    await srv.services.supervisor.start("beta");
    const res = await fetch(`${srv.url}/completion`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "x", n_predict: 3 }) });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.tokens_predicted ?? body.timings?.predicted_n).toBe(3);
    expect(srv.services.requests.snapshot().perModel.beta!.total).toBe(1);
  });

  test("malformed bodies get a 400 in OpenAI's shape", async () => {
    await boot();
    register("alpha");
    const res = await fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{oops" });
    expect(res.status).toBe(400);
    expect((await res.json()).error.type).toBe("invalid_request_error");
  });

  test("a body over the limit is a 413 in OpenAI's shape, before any model is loaded", async () => {
    await boot();
    register("alpha");
    const big = JSON.stringify({ model: "alpha", prompt: "x".repeat(300 * 1024) });
    const res = await fetch(`${srv.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: big });
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe("request_too_large");
    expect(status("alpha")).toBe("stopped");
  });

  test("GET /v1/models lists every model in OpenAI's list shape with our status", async () => {
    await boot();
    register("alpha");
    register("beta");
    await srv.services.supervisor.start("alpha");
    const list = await client.models.list();
    const ids = list.data.map((m) => m.id).sort();
    expect(ids).toEqual(["alpha", "beta"]);
    const raw = await (await fetch(`${srv.url}/v1/models`)).json();
    expect(raw.object).toBe("list");
    const alpha = raw.data.find((m: any) => m.id === "alpha");
    expect(alpha).toMatchObject({ object: "model", owned_by: "llama-async-proxy", status: "running" });
    expect(typeof alpha.created).toBe("number");
    expect(raw.data.find((m: any) => m.id === "beta").status).toBe("stopped");
  });

  test("/upstream/:id/* reaches the model's own server", async () => {
    await boot();
    register("alpha");
    await srv.services.supervisor.start("alpha");
    const props = await (await fetch(`${srv.url}/upstream/alpha/props`)).json();
    expect(props.total_slots).toBeGreaterThan(0);
    const slots = await (await fetch(`${srv.url}/upstream/alpha/slots`)).json();
    expect(Array.isArray(slots)).toBe(true);
    expect((await fetch(`${srv.url}/upstream/zzz/props`)).status).toBe(404);
  });
});

describe("queue, limits, swap, TTL", () => {
  test("requests arriving while a model loads all wait and proceed once, with one process", async () => {
    await boot();
    register("alpha", { extraArgs: ["--fake-load-ms", "600"] });
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => client.completions.create({ model: "alpha", prompt: `p${i}`, max_tokens: 2 })),
    );
    expect(results.every((r) => r.choices.length === 1)).toBe(true);
    const starts = srv.services.logs.query({ source: "llama-server:alpha", q: "listening on http" });
    expect(starts).toHaveLength(1);
  });

  test("past the concurrency limit and queue, requests get 429 with Retry-After", async () => {
    await boot({ maxConcurrentRequests: 1, maxQueuedRequests: 1 });
    register("alpha", { extraArgs: ["--fake-token-delay-ms", "40"] });
    await srv.services.supervisor.start("alpha");
    const send = () =>
      fetch(`${srv.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "alpha", prompt: "x", max_tokens: 10 }) });
    const responses = await Promise.all([send(), send(), send(), send()]);
    const codes = responses.map((r) => r.status).sort();
    expect(codes).toEqual([200, 200, 429, 429]);
    const limited = responses.find((r) => r.status === 429)!;
    expect(limited.headers.get("retry-after")).toBe("1");
    expect((await limited.json()).error.type).toBe("rate_limit_exceeded");
    const err = await Promise.all([
      client.completions.create({ model: "alpha", prompt: "x", max_tokens: 10 }),
      client.completions.create({ model: "alpha", prompt: "x", max_tokens: 10 }),
      client.completions.create({ model: "alpha", prompt: "x", max_tokens: 10 }),
    ]).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
  });

  test("maxLoadedModels 1 swaps models, least recently used first", async () => {
    await boot({ maxLoadedModels: 1 });
    register("alpha");
    register("beta");
    await client.completions.create({ model: "alpha", prompt: "x", max_tokens: 1 });
    expect(status("alpha")).toBe("running");
    await client.completions.create({ model: "beta", prompt: "x", max_tokens: 1 });
    expect(status("beta")).toBe("running");
    expect(status("alpha")).toBe("stopped");
  });

  test("POST /api/models/:id/start obeys maxLoadedModels the same way", async () => {
    await boot({ maxLoadedModels: 1 });
    register("alpha");
    register("beta");
    const start = (id: string) => fetch(`${srv.url}/api/models/${id}/start`, { method: "POST", headers: { "content-type": "application/json" } });
    expect((await start("alpha")).status).toBe(200);
    const res = await start("beta");
    expect(res.status).toBe(200);
    expect((await res.json()).data.status).toBe("running");
    expect(status("alpha")).toBe("stopped");
    const quick = await fetch(`${srv.url}/api/models/alpha/start?wait=false`, { method: "POST", headers: { "content-type": "application/json" } });
    expect(quick.status).toBe(202);
    await waitFor(() => status("alpha") === "running", "alpha to run again");
    expect(status("beta")).toBe("stopped");
  });

  test("a busy model is never evicted: the other model waits until its stream ends", async () => {
    await boot({ maxLoadedModels: 1 });
    register("alpha", { extraArgs: ["--fake-token-delay-ms", "30"] });
    register("beta");
    const stream = await client.chat.completions.create({ model: "alpha", messages: [{ role: "user", content: "x" }], max_tokens: 20, stream: true });
    const alphaDone = (async () => {
      let n = 0;
      for await (const c of stream) if (c.choices[0]?.delta?.content) n++;
      return n;
    })();
    // Ask for beta while alpha is streaming: it must queue behind alpha's request.
    const betaP = client.completions.create({ model: "beta", prompt: "x", max_tokens: 1 });
    const alphaTokens = await alphaDone;
    expect(alphaTokens).toBe(20);
    const beta = await betaP;
    expect(beta.choices).toHaveLength(1);
    expect(status("alpha")).toBe("stopped");
    expect(srv.services.requests.snapshot().perModel.alpha!.errors).toBe(0);
  });

  test("two cold models requested at once with maxLoadedModels 1 both get served (no admission deadlock)", async () => {
    await boot({ maxLoadedModels: 1 });
    for (const id of ["alpha", "beta", "gamma"]) register(id);
    await srv.services.pool.ensureStarted("alpha");
    const [b, c] = await Promise.all([
      client.completions.create({ model: "beta", prompt: "x", max_tokens: 1 }),
      client.completions.create({ model: "gamma", prompt: "x", max_tokens: 1 }),
    ]);
    expect(b.choices).toHaveLength(1);
    expect(c.choices).toHaveLength(1);
    const live = srv.services.supervisor.runtimes().filter((r) => r.state === "running" || r.state === "loading");
    expect(live.length).toBeLessThanOrEqual(1);
    // And the pool still admits loads afterwards.
    const a = await client.completions.create({ model: "alpha", prompt: "x", max_tokens: 1 });
    expect(a.choices).toHaveLength(1);
  });

  test("a model still stopping keeps its place: the next one starts only after it has exited", async () => {
    await boot({ maxLoadedModels: 1, stopTimeoutSeconds: 1 });
    register("alpha", { extraArgs: ["--fake-ignore-sigterm"] });
    register("beta");
    const first = await srv.services.supervisor.start("alpha");
    const stopping = srv.services.supervisor.stop("alpha");
    await waitFor(() => srv.services.supervisor.runtimeOf("alpha")?.state === "stopping", "alpha to be stopping");
    const seen = new Set<string>();
    const off = srv.services.bus.on("model.status", () => {
      const live = srv.services.supervisor.runtimes().filter((r) => r.state === "loading" || r.state === "running" || r.state === "stopping");
      seen.add(String(live.length));
    });
    const res = await client.completions.create({ model: "beta", prompt: "x", max_tokens: 1 });
    off();
    await stopping;
    expect(res.choices).toHaveLength(1);
    expect(seen.has("2")).toBe(false);
    expect(first.pid).toBeDefined();
  });

  test("a crashed model waiting for its restart gives its place up to a requested one", async () => {
    await boot({ maxLoadedModels: 1, maxRestarts: 2, restartDelayMs: 800 });
    register("alpha", { extraArgs: ["--fake-crash-after", "1"] });
    register("beta");
    await (await fetch(`${srv.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "alpha", prompt: "x", max_tokens: 1 }) })).text();
    await waitFor(() => srv.services.supervisor.runtimeOf("alpha")?.restartPending, "alpha's restart to be scheduled");
    let most = 0;
    const off = srv.services.bus.on("model.status", () => {
      most = Math.max(most, srv.services.supervisor.runtimes().filter((r) => r.state === "loading" || r.state === "running").length);
    });
    const res = await client.completions.create({ model: "beta", prompt: "x", max_tokens: 1 });
    expect(res.choices).toHaveLength(1);
    off();
    expect(most).toBe(1);
    // Dropped, and its scheduled restart cancelled: it cannot come back beside beta.
    expect(status("alpha")).toBe("stopped");
    expect(srv.services.supervisor.runtimeOf("alpha")?.restartPending).toBeUndefined();
    expect(status("beta")).toBe("running");
  });

  test("a client that gives up while its model loads is counted as 499, not as a server error", async () => {
    await boot();
    register("slow", { extraArgs: ["--fake-load-ms", "800"] });
    const ac = new AbortController();
    const pending = fetch(`${srv.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "slow", prompt: "x", max_tokens: 1 }), signal: ac.signal }).catch((e) => e);
    await waitFor(() => srv.services.supervisor.runtimeOf("slow")?.state === "loading", "the load to begin");
    ac.abort();
    await pending;
    await waitFor(() => srv.services.requests.snapshot().total === 1, "the request to be counted");
    expect(srv.services.requests.snapshot().errors).toBe(0);
  });

  test("a model whose start is still making room cannot be deleted, and nothing wedges", async () => {
    await boot({ maxLoadedModels: 1 });
    for (const id of ["alpha", "beta", "gamma"]) register(id);
    await client.completions.create({ model: "alpha", prompt: "x", max_tokens: 1 });
    const call = (method: string, path: string) => fetch(`${srv.url}${path}`, { method, headers: { "content-type": "application/json" } }).then((r) => r.status);
    const [start, del, other] = await Promise.all([
      call("POST", "/api/models/beta/start"),
      call("DELETE", "/api/models/beta"),
      call("POST", "/api/models/gamma/start"),
    ]);
    expect(start).toBe(200);
    expect(del).toBe(409);
    expect(other).toBe(200);
    // Later starts still work.
    expect(await call("POST", "/api/models/alpha/start")).toBe(200);
    expect(status("alpha")).toBe("running");
  });

  test("a start that fails before any process runs still explains itself in details", async () => {
    await boot();
    const row = register("gone");
    rmSync(row.path);
    const res = await fetch(`${srv.url}/api/models/gone/start`, { method: "POST", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body.error.details).toContain("not found");
  });

  test("steady traffic to one model cannot starve a request for another (the busy one is drained)", async () => {
    await boot({ maxLoadedModels: 1 });
    register("alpha", { extraArgs: ["--fake-token-delay-ms", "50"] });
    register("beta");
    await srv.services.supervisor.start("alpha");
    // Two request loops, offset by half a request (~400 ms each), keep alpha busy at every moment
    // for at most 6 s. (The offset shapes the load; it is not a wait for readiness.)
    const until = Date.now() + 6000;
    let betaAnsweredAt = 0;
    let alphaServed = 0;
    const loop = async (offsetMs: number) => {
      await Bun.sleep(offsetMs);
      while (Date.now() < until && !betaAnsweredAt) {
        const r = await client.completions.create({ model: "alpha", prompt: "x", max_tokens: 8 });
        if (r.choices.length === 1) alphaServed++;
      }
    };
    const loops = [loop(0), loop(200)];
    await waitFor(() => alphaServed >= 2, "alpha traffic to flow");
    const beta = await client.completions.create({ model: "beta", prompt: "x", max_tokens: 1 });
    betaAnsweredAt = Date.now();
    expect(beta.choices).toHaveLength(1);
    // Served while alpha's traffic was still going, not after it died down.
    expect(betaAnsweredAt).toBeLessThan(until);
    await Promise.all(loops);
    expect(srv.services.requests.snapshot().errors).toBe(0);
  }, 20_000);

  test("a stop cancels a start that is still waiting for room, and evicts nobody for it", async () => {
    await boot({ maxLoadedModels: 1 });
    register("alpha", { extraArgs: ["--fake-token-delay-ms", "30"] });
    register("beta");
    const stream = await client.chat.completions.create({ model: "alpha", messages: [{ role: "user", content: "x" }], max_tokens: 15, stream: true });
    const quick = await fetch(`${srv.url}/api/models/beta/start?wait=false`, { method: "POST", headers: { "content-type": "application/json" } });
    expect(quick.status).toBe(202);
    expect(srv.services.pool.isStarting("beta")).toBe(true);
    const stopped = await fetch(`${srv.url}/api/models/beta/stop`, { method: "POST", headers: { "content-type": "application/json" } });
    expect(stopped.status).toBe(200);
    let tokens = 0;
    for await (const c of stream) if (c.choices[0]?.delta?.content) tokens++;
    expect(tokens).toBe(15);
    await waitFor(() => !srv.services.pool.isStarting("beta"), "the cancelled start to settle");
    expect(status("beta")).toBe("stopped");
    expect(status("alpha")).toBe("running");
  });

  test("a model idle for its TTL is stopped", async () => {
    await boot();
    register("alpha", { idleTimeoutSeconds: 1 });
    await client.completions.create({ model: "alpha", prompt: "x", max_tokens: 1 });
    expect(status("alpha")).toBe("running");
    await waitFor(() => status("alpha") === "stopped", "the idle model to stop", 5000);
  });

  test("a failed load is a 503 with the reason", async () => {
    await boot();
    register("broken", { extraArgs: ["--fake-fail-load"] });
    const err = await client.completions.create({ model: "broken", prompt: "x", max_tokens: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(503);
    expect(err.error.message.length).toBeGreaterThan(10);
  });
});

describe("streaming edge cases", () => {
  test("while a streamed request waits for a load it receives SSE comments, then the stream", async () => {
    await boot();
    register("slow", { extraArgs: ["--fake-load-ms", "700"] });
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "slow", messages: [{ role: "user", content: "x" }], max_tokens: 3, stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    const text = await res.text();
    expect(text).toMatch(/^: loading slow \d+s\n\n/);
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
    expect(text.match(/^data: \{/gm)!.length).toBeGreaterThanOrEqual(3);
  });

  test("a client that leaves while its stream waits for a load causes no unhandled error", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      await boot();
      register("slow", { extraArgs: ["--fake-load-ms", "900"] });
      const ac = new AbortController();
      const res = await fetch(`${srv.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "slow", messages: [{ role: "user", content: "x" }], max_tokens: 2, stream: true }),
        signal: ac.signal,
      });
      const reader = res.body!.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toStartWith(": loading slow");
      ac.abort();
      await waitFor(() => srv.services.supervisor.runtimeOf("slow")?.state === "running", "the load to finish");
      await waitFor(() => srv.services.requests.snapshot().active === 0, "the request to end");
      expect(srv.services.requests.snapshot().errors).toBe(0);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  test("a client that disconnects mid-stream stops generation upstream", async () => {
    await boot();
    register("alpha", { extraArgs: ["--fake-token-delay-ms", "50", "-np", "1"] });
    const rt = await srv.services.supervisor.start("alpha");
    const ac = new AbortController();
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "alpha", messages: [{ role: "user", content: "x" }], max_tokens: 1000, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    const busy = await (await fetch(`${rt.baseUrl}/slots`, { headers: childAuthHeaders(rt.baseUrl!) })).json();
    expect(busy.some((s: any) => s.is_processing)).toBe(true);
    ac.abort();
    await waitFor(async () => {
      const slots = await (await fetch(`${rt.baseUrl}/slots`, { headers: childAuthHeaders(rt.baseUrl!) })).json();
      return slots.every((s: any) => !s.is_processing);
    }, "llama-server to stop generating", 5000);
    await waitFor(() => srv.services.requests.snapshot().active === 0, "the request to be counted as finished");
  });

  test("an upstream that dies mid-stream ends the client's stream with an error event, not a hang", async () => {
    await boot();
    register("alpha", { extraArgs: ["--fake-token-delay-ms", "30"] });
    const rt = await srv.services.supervisor.start("alpha");
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "alpha", messages: [{ role: "user", content: "x" }], max_tokens: 1000, stream: true }),
    });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("data: ");
    process.kill(rt.pid!, "SIGKILL");
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    const events = rest.trim().split("\n\n");
    expect(events.at(-1)).toContain('"error"');
    expect(srv.services.requests.snapshot().errors).toBe(1);
  });
});
