/**
 * Peers with a real llama-server (the tiny model): two instances on loopback, each with its own
 * port and data dir. B runs the model; A has no model and B as its peer. The openai client streams
 * a chat completion through A; A's /v1/models lists B's model with where it lives; B killed
 * (SIGKILL, its own process) in the middle of a stream: A's client gets an error, A marks the peer
 * down and answers the next request in OpenAI's shape. Runs when LLAMA_SERVER_BIN and
 * LLAMA_TEST_MODEL are set; skips with a message otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { startServer, type RunningServer } from "../../src/server";
import { killAndWait, startListening } from "../helpers/process";
import { waitFor } from "../helpers/services";

const BIN = process.env.LLAMA_SERVER_BIN;
const MODEL = process.env.LLAMA_TEST_MODEL;
const enabled = Boolean(BIN && MODEL);
if (!enabled) console.log("SKIP real-llama-peers: set LLAMA_SERVER_BIN and LLAMA_TEST_MODEL (shared/tools/build-llama-server.sh prints both)");

const ROOT = resolve(import.meta.dir, "../..");

async function api(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body === undefined ? (method === "GET" ? undefined : "{}") : JSON.stringify(body) });
  const json = (await res.json()) as { success: boolean; data: any; error?: unknown };
  if (!json.success) throw new Error(`${method} ${path} -> ${res.status}: ${JSON.stringify(json.error)}`);
  return json.data;
}

describe.skipIf(!enabled)("peers with a real llama-server", () => {
  let dir: string;
  // B is a process of its own, so that it can really be killed; A runs in this process.
  let b: { proc: Subprocess; url: string };
  let a: RunningServer;
  /** B's llama-server: B's SIGKILL leaves it behind (nobody is left to stop it), we stop it. */
  let llamaPid: number | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "lap-realpeers-"));
    b = await startListening([process.execPath, "src/main.ts", "--port", "0", "--host", "127.0.0.1", "--data-dir", join(dir, "b"), "--log-level", "error"], { cwd: ROOT });
    b.url = b.url.replace(/\/$/, "");
    const cfg = await api(b.url, "GET", "/api/config");
    await api(b.url, "POST", "/api/config", { ...cfg, serverPath: BIN, host: "127.0.0.1", port: 22000 + Math.floor(Math.random() * 8000), ctx_size: 2048, batch_size: 128, threads: 1, gpu_layers: 0, maxRestarts: 0 });
    const reg = await api(b.url, "POST", "/api/models", { models: [{ name: "tiny", path: MODEL, settings: { extraArgs: ["-np", "1"] } }] });
    expect(reg.models[0]).toMatchObject({ id: "tiny", format: "gguf" });

    a = await startServer({
      port: 0, host: "127.0.0.1", dataDir: join(dir, "a"), configPath: join(dir, "a", "config.json"), logLevel: "error", environment: "test", quiet: true,
      databasePath: ":memory:",
      // Checks are driven by the test (checkAll); a back-off that outlasts the assertions.
      peers: { checkIntervalMs: 60_000, checkTimeoutMs: 2000, backoffBaseMs: 20_000, backoffMaxMs: 40_000 },
    });
    a.services.config.update({ ...a.services.config.get(), peers: [{ name: "b", url: b.url }] });
    await a.services.peers.checkAll();
  }, 60_000);

  afterAll(async () => {
    await a?.stop();
    if (b) await killAndWait(b.proc);
    if (llamaPid) {
      try {
        process.kill(llamaPid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const client = () => new OpenAI({ baseURL: `${a.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });

  test("A's /v1/models lists B's model and says where it lives", async () => {
    const list = await client().models.list();
    const tiny = list.data.find((m) => m.id === "tiny") as (OpenAI.Model & { peer?: string }) | undefined;
    expect(tiny).toMatchObject({ id: "tiny", object: "model", owned_by: "b", peer: "b" });
  });

  test("the openai client streams a chat completion from the real model through A", async () => {
    const t0 = performance.now();
    const { data: stream, response } = await client()
      .chat.completions.create({
        model: "tiny", messages: [{ role: "user", content: "Say something." }], max_tokens: 8, temperature: 0, stream: true,
        stream_options: { include_usage: true },
        // llama-server's extension: exactly max_tokens even if the random model emits EOS.
        ...({ ignore_eos: true } as object),
      })
      .withResponse();
    expect(response.headers.get("x-llama-proxy-peer")).toBe("b");
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    console.log(`real peers: loaded on B and streamed through A in ${Math.round(performance.now() - t0)} ms (${chunks} chunks)`);
    expect(usage?.completion_tokens).toBe(8);
    expect(finish).toBe("length");
    // It runs on B (started there on demand), not on A.
    const onB = await api(b.url, "GET", "/api/models/tiny");
    expect(onB.status).toBe("running");
    llamaPid = onB.pid;
    expect(a.services.supervisor.runtimeOf("tiny")).toBeUndefined();
    await waitFor(() => a.services.peers.snapshot()[0]!.requestsTotal === 1, "A to count the relayed request");
  }, 60_000);

  test("B killed mid-stream: the stream fails, A marks the peer down and answers in OpenAI's shape", async () => {
    // A long generation (about 2 s of tokens on a quiet machine), so that B dies in its middle.
    const stream = await client().chat.completions.create({
      model: "tiny", messages: [{ role: "user", content: "Tell a long story." }], max_tokens: 1500, temperature: 0, stream: true,
      ...({ ignore_eos: true } as object),
    });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    await killAndWait(b.proc);
    let chunks = 1;
    let failure: unknown;
    try {
      for (let r = await it.next(); !r.done; r = await it.next()) chunks++;
    } catch (err) {
      failure = err;
    }
    // Cut before its end: an error from the stream, never a clean finish of 1500 tokens.
    expect(failure, `the stream ended cleanly after ${chunks} chunks`).toBeDefined();
    // The error event names who went away: the peer, not a llama-server of ours.
    expect(String(failure)).toContain("upstream peer b closed the stream");
    expect(chunks).toBeLessThan(1500);

    // A has not checked B since: the next request finds it unreachable, marks it down, and says
    // so in OpenAI's error shape.
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0 }),
    });
    const body = (await res.json()) as { error?: { message: string; type: string; code: string } };
    expect(res.status).toBe(502);
    expect(body.error).toMatchObject({ code: "peer_unavailable", type: "server_error", message: expect.stringContaining("No peer could serve the request: b: ") });
    const peer = a.services.peers.snapshot()[0]!;
    expect(peer.state).toBe("down");
    expect(peer.failures).toBeGreaterThanOrEqual(1);
    expect(peer.lastError!.message.length).toBeGreaterThan(0);
    const listed = (await api(a.url, "GET", "/api/peers")).peers[0];
    expect(listed).toMatchObject({ name: "b", state: "down" });
    expect(await (await fetch(`${a.url}/metrics`)).text()).toContain('llamaproxy_peer_up{peer="b"} 0');
  }, 60_000);
});
