import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { PeerConfig } from "../../src/peers/schema";
import { startServer, type RunningServer } from "../../src/server";
import { waitFor } from "../helpers/services";

// Two and three instances of the proxy on loopback (own ports, data dirs and fake llama-servers),
// peering each other: routing by model, streaming through a peer with the openai client, a peer
// that dies, and peers that point at each other.
const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");

let dir: string;
let running: RunningServer[] = [];
let seq = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lap-peers-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await Promise.all(running.map((s) => s.stop()));
  running = [];
});

async function instance(models: Array<{ id: string; args?: string[] }>, opts: { apiKey?: string } = {}): Promise<RunningServer> {
  const sub = join(dir, `i${++seq}`);
  const srv = await startServer({
    port: 0, host: "127.0.0.1", dataDir: sub, configPath: join(sub, "config.json"), logLevel: "error", environment: "test", quiet: true,
    databasePath: ":memory:",
    apiKey: opts.apiKey,
    // Checks are driven by the tests (checkAll), so a background round never races an assertion;
    // a back-off long enough to outlast a loaded machine's assertions.
    peers: { checkIntervalMs: 60_000, checkTimeoutMs: 2000, backoffBaseMs: 20_000, backoffMaxMs: 40_000 },
  });
  running.push(srv);
  srv.services.config.update({
    ...srv.services.config.get(),
    serverPath: FAKE, host: "127.0.0.1", port: 20000 + Math.floor(Math.random() * 20000), stopTimeoutSeconds: 2, maxRestarts: 0, maxLoadedModels: 4,
  });
  for (const m of models) {
    const path = join(sub, `${m.id}.gguf`);
    writeFileSync(path, "GGUF fake weights");
    srv.services.registry.insert([{ id: m.id, name: m.id, path, size: 17, family: "llama", format: "gguf", settings: { extraArgs: m.args ?? [] } }]);
  }
  return srv;
}

async function peer(srv: RunningServer, peers: Array<Partial<PeerConfig> & { srv?: RunningServer; name: string }>) {
  srv.services.config.update({
    ...srv.services.config.get(),
    peers: peers.map(({ srv: p, ...rest }) => ({ url: p ? p.url : "http://127.0.0.1:1", ...rest })),
  });
  await srv.services.peers.checkAll();
}

const peerState = (srv: RunningServer, name: string) => srv.services.peers.snapshot().find((p) => p.name === name)!;
const client = (srv: RunningServer, apiKey = "unused") => new OpenAI({ baseURL: `${srv.url}/v1`, apiKey, maxRetries: 0, timeout: 20_000 });
const chat = (srv: RunningServer, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 3, ...body }) });

describe("two instances", () => {
  test("GET /v1/models lists local and peer models, each saying where it lives", async () => {
    const b = await instance([{ id: "beta" }]);
    const a = await instance([{ id: "alpha" }]);
    await peer(a, [{ name: "b", srv: b }]);
    const res = await fetch(`${a.url}/v1/models`);
    const body = await res.json();
    expect(res.headers.get("x-llama-proxy-instance")).toBe(a.services.instanceId);
    const byId = Object.fromEntries(body.data.map((m: { id: string }) => [m.id, m]));
    expect(byId.alpha).toMatchObject({ owned_by: "llama-async-proxy", status: "stopped" });
    expect(byId.alpha.peer).toBeUndefined();
    expect(byId.beta).toMatchObject({ object: "model", owned_by: "b", peer: "b", status: "stopped" });
    expect((await (await fetch(`${a.url}/v1/models/beta`)).json())).toMatchObject({ id: "beta", peer: "b" });
    // The peer's own state, as /api/peers shows it.
    const peers = (await (await fetch(`${a.url}/api/peers`)).json()).data;
    expect(peers.instanceId).toBe(a.services.instanceId);
    expect(peers.peers[0]).toMatchObject({ name: "b", state: "up", product: true, instanceId: b.services.instanceId, failures: 0 });
    expect(peers.peers[0].latencyMs).toBeGreaterThan(0);
    expect(peers.peers[0].models).toEqual([{ id: "beta", aliases: [], status: "stopped", local: true }]);
  }, 20_000);

  test("the openai client streams a chat completion from a model that only the peer has", async () => {
    const b = await instance([{ id: "beta", args: ["--fake-token-delay-ms", "5"] }]);
    const a = await instance([{ id: "alpha" }]);
    await peer(a, [{ name: "b", srv: b }]);
    const stream = await client(a).chat.completions.create({ model: "beta", messages: [{ role: "user", content: "hi" }], max_tokens: 6, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let chunks = 0;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThanOrEqual(7);
    expect(text.length).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBe(6);
    // It ran on B (started there on demand), not here.
    expect(b.services.supervisor.runtimeOf("beta")?.state).toBe("running");
    expect(a.services.supervisor.runtimeOf("beta")).toBeUndefined();
    await waitFor(() => peerState(a, "b").requestsTotal === 1, "the relayed request to end");
    expect(a.services.requests.snapshot().perModel.beta).toMatchObject({ total: 1, completionTokens: 6 });
    // Non-streaming works the same way; local models still answer locally.
    const plain = await client(a).chat.completions.create({ model: "beta", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    expect(plain.usage?.completion_tokens).toBe(2);
    const local = await chat(a, { model: "alpha" });
    expect(local.status).toBe(200);
    expect(local.headers.get("x-llama-proxy-peer")).toBeNull();
    expect(a.services.supervisor.runtimeOf("alpha")?.state).toBe("running");
  }, 30_000);

  test("the peer's API key is sent; a peer that refuses ours is down with the reason", async () => {
    const b = await instance([{ id: "beta" }], { apiKey: "peer-secret-123" });
    const a = await instance([]);
    await peer(a, [{ name: "nokey", srv: b }]);
    expect(peerState(a, "nokey")).toMatchObject({ state: "down", failures: 1 });
    expect(peerState(a, "nokey").lastError!.message).toContain("401");
    await peer(a, [{ name: "b", srv: b, apiKey: "peer-secret-123" }]);
    expect(peerState(a, "b").state).toBe("up");
    const res = await chat(a, { model: "beta" });
    expect(res.status).toBe(200);
    expect((await res.json()).usage.completion_tokens).toBe(3);
  }, 20_000);

  test("errors keep OpenAI's shape: an unknown model is 404, a peer's own error comes through", async () => {
    const b = await instance([{ id: "beta" }]);
    const a = await instance([]);
    await peer(a, [{ name: "b", srv: b }]);
    const missing = await chat(a, { model: "nowhere" });
    expect(missing.status).toBe(404);
    expect((await missing.json()).error).toMatchObject({ code: "model_not_found", type: "invalid_request_error" });
    const bad = await fetch(`${a.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "beta" }) });
    expect(bad.status).toBe(400); // the fake llama-server's "'messages' is required", relayed as is
    expect((await bad.json()).error.message).toContain("messages");
  }, 20_000);

  test("a client that disconnects mid-stream aborts the request on the peer", async () => {
    const b = await instance([{ id: "beta", args: ["--fake-token-delay-ms", "20", "--fake-tokens", "500"] }]);
    const a = await instance([]);
    await peer(a, [{ name: "b", srv: b }]);
    const ac = new AbortController();
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: "POST", headers: { "content-type": "application/json" }, signal: ac.signal,
      body: JSON.stringify({ model: "beta", stream: true, messages: [{ role: "user", content: "hi" }] }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    await waitFor(() => b.services.requests.snapshot().active === 1, "the request to be running on B");
    ac.abort();
    // B's own proxy sees its client (A) go away: the request ends there as aborted (499).
    await waitFor(() => b.services.requests.snapshot().active === 0, "B's request to end after the abort");
    await waitFor(() => peerState(a, "b").inFlight === 0, "A to count the relay as ended");
    expect(b.services.requests.snapshot().perModel.beta!.total).toBe(1);
  }, 20_000);
});

describe("three instances", () => {
  test("the same model on two peers: the one that runs it wins, then priority", async () => {
    const b = await instance([{ id: "shared" }]);
    const c = await instance([{ id: "shared" }]);
    const a = await instance([]);
    await peer(a, [{ name: "b", srv: b }, { name: "c", srv: c, priority: 5 }]);
    // Neither runs it: priority decides (c).
    expect((await chat(a, { model: "shared" })).headers.get("x-llama-proxy-peer")).toBe("c");
    // Now only b runs it... after c is stopped and b is started.
    await c.services.supervisor.stop("shared");
    await b.services.pool.ensureStarted("shared");
    await a.services.peers.checkAll();
    expect(peerState(a, "b").models[0]!.status).toBe("running");
    expect((await chat(a, { model: "shared" })).headers.get("x-llama-proxy-peer")).toBe("b");
  }, 30_000);

  test("a peer that dies is skipped and the request retried on the next; its state says so", async () => {
    const b = await instance([{ id: "shared", args: ["--fake-token-delay-ms", "30", "--fake-tokens", "400"] }]);
    const c = await instance([{ id: "shared" }]);
    const a = await instance([]);
    await peer(a, [{ name: "b", srv: b, priority: 10 }, { name: "c", srv: c }]);
    // A stream is running through b when b goes away: the client's stream ends with an error event.
    const res = await chat(a, { model: "shared", stream: true, max_tokens: 400 });
    expect(res.headers.get("x-llama-proxy-peer")).toBe("b");
    const reader = res.body!.getReader();
    await reader.read();
    await b.stop();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain('"error"');
    expect(rest).not.toContain("[DONE]");
    // b is gone but A does not know yet: the next request finds it unreachable and goes to c.
    const next = await chat(a, { model: "shared" });
    expect(next.status).toBe(200);
    expect(next.headers.get("x-llama-proxy-peer")).toBe("c");
    const state = peerState(a, "b");
    expect(state.state).toBe("down");
    expect(state.failures).toBeGreaterThanOrEqual(1);
    expect(state.backoffUntil).toBeDefined();
    expect(state.lastError!.message.length).toBeGreaterThan(0);
    // While b backs off it is not tried at all.
    expect((await chat(a, { model: "shared" })).headers.get("x-llama-proxy-peer")).toBe("c");
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toContain('llamaproxy_peer_up{peer="b"} 0');
    expect(metrics).toContain('llamaproxy_peer_up{peer="c"} 1');
    expect(metrics).toMatch(/llamaproxy_peer_requests_total\{peer="c"\} 2/);
  }, 30_000);
});

describe("loops", () => {
  test("A peers B and B peers A: both answer, neither lists the other's models back, nothing loops", async () => {
    const a = await instance([{ id: "alpha" }]);
    const b = await instance([{ id: "beta" }]);
    await peer(a, [{ name: "b", srv: b }]);
    await peer(b, [{ name: "a", srv: a }]);
    await a.services.peers.checkAll();
    // Each learned only the other's own model (the Via of the check keeps ours out of its answer).
    expect(peerState(a, "b").models.map((m) => m.id)).toEqual(["beta"]);
    expect(peerState(b, "a").models.map((m) => m.id)).toEqual(["alpha"]);
    expect((await chat(a, { model: "beta" })).status).toBe(200);
    expect((await chat(b, { model: "alpha" })).status).toBe(200);
    // A model neither has: a plain 404 from the first instance.
    const none = await chat(a, { model: "ghost" });
    expect(none.status).toBe(404);
    // A stale listing: B still believes A has alpha after A forgot it. B sends it to A (Via: B);
    // A does not have it and must not send it back to B: 404, one hop, answered.
    expect(a.services.registry.remove("alpha")).toBe(true);
    const before = b.services.requests.snapshot().total;
    const stale = await chat(b, { model: "alpha" });
    expect(stale.status).toBe(404);
    expect((await stale.json()).error.message).toContain("alpha");
    expect(b.services.requests.snapshot().total).toBe(before + 1); // only the one request B relayed
    expect(peerState(a, "b").requestsTotal).toBe(1); // A sent nothing back (its one relay was beta, above)
  }, 30_000);

  test("a request whose Via already names this instance is never sent to a peer", async () => {
    const b = await instance([{ id: "beta" }]);
    const a = await instance([]);
    await peer(a, [{ name: "b", srv: b }]);
    const res = await chat(a, { model: "beta" }, { via: `1.1 ${a.services.instanceId}` });
    expect(res.status).toBe(404);
    const body = await res.json();
    expect(body.error.code).toBe("model_not_found");
    expect(body.error.message).toContain("loop");
    expect(peerState(a, "b").requestsTotal).toBe(0);
    expect(b.services.requests.snapshot().total).toBe(0);
  }, 20_000);
});

describe("another instance of this product as a peer", () => {
  test("POST /api/models/:id/start on a remote model starts it there, with the peer's key", async () => {
    const b = await instance([{ id: "beta" }], { apiKey: "peer-secret-123" });
    const a = await instance([]);
    await peer(a, [{ name: "b", srv: b, apiKey: "peer-secret-123" }]);
    const res = await fetch(`${a.url}/api/models/beta/start`, { method: "POST", headers: { "content-type": "application/json" } });
    const body = await res.json();
    expect(res.status).toBe(200);
    expect(body.data).toMatchObject({ id: "beta", status: "running", peer: "b" });
    expect(b.services.supervisor.runtimeOf("beta")?.state).toBe("running");
    await waitFor(async () => (await (await fetch(`${a.url}/api/peers`)).json()).data.peers[0].models[0].status === "running", "A to show beta running on b");
    // A model nobody has is still a 404 envelope.
    const missing = await fetch(`${a.url}/api/models/ghost/start`, { method: "POST", headers: { "content-type": "application/json" } });
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe("NOT_FOUND");
  }, 20_000);
});

describe("console", () => {
  test("the dashboard shows each peer's state, latency, models and last error", async () => {
    const b = await instance([{ id: "beta" }]);
    const a = await instance([]);
    await peer(a, [{ name: "b", srv: b }, { name: "gone" }]);
    const html = await (await fetch(`${a.url}/ui/dashboard`)).text();
    const row = (name: string) => html.slice(html.indexOf(`data-peer="${name}"`), html.indexOf("</tr>", html.indexOf(`data-peer="${name}"`)));
    expect(html).toContain('id="peers-heading"');
    expect(row("b")).toContain(">up<");
    expect(row("b")).toMatch(/\d+ ms/);
    expect(row("b")).toContain("beta");
    expect(row("b")).toContain("stopped");
    expect(row("gone")).toContain(">down<");
    expect(row("gone")).toContain("http://127.0.0.1:1");
    expect(row("gone")).toContain('class="reason"');
  }, 20_000);
});
