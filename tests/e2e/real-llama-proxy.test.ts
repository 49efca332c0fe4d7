/**
 * The proxy against a real llama-server: the `openai` client streams a chat completion through
 * the proxy from a model that is not running when the request arrives. Runs when
 * LLAMA_SERVER_BIN and LLAMA_TEST_MODEL are set; skips with a message otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { childAuthHeaders } from "../../src/supervisor/child-keys";
import OpenAI from "openai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type RunningServer } from "../../src/server";
import { waitFor } from "../helpers/services";

const BIN = process.env.LLAMA_SERVER_BIN;
const MODEL = process.env.LLAMA_TEST_MODEL;
const enabled = Boolean(BIN && MODEL);
if (!enabled) console.log("SKIP real-llama-proxy: set LLAMA_SERVER_BIN and LLAMA_TEST_MODEL (shared/tools/build-llama-server.sh prints both)");

describe.skipIf(!enabled)("proxy with a real llama-server", () => {
  let dir: string;
  let srv: RunningServer;
  let client: OpenAI;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "lap-realproxy-"));
    srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" });
    const cfg = await (await fetch(`${srv.url}/api/config`)).json();
    const saved = await fetch(`${srv.url}/api/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...cfg.data, serverPath: BIN, host: "127.0.0.1", port: 22000 + Math.floor(Math.random() * 8000), ctx_size: 512, batch_size: 128, threads: 2, gpu_layers: 0 }),
    });
    expect(saved.status).toBe(200);
    // Registered through the API: name, family, context and quantization come from the GGUF header.
    const reg = await fetch(`${srv.url}/api/models`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ models: [{ name: "tiny", path: MODEL }] }) });
    const body = await reg.json();
    expect(reg.status).toBe(200);
    expect(body.data.models[0]).toMatchObject({ id: "tiny", format: "gguf", family: "llama" });
    client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
  }, 60_000);

  afterAll(async () => {
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("streams a chat completion from a model that was not running", async () => {
    expect(srv.services.supervisor.runtimeOf("tiny")?.state ?? "stopped").toBe("stopped");
    const t0 = performance.now();
    const stream = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Say something." }],
      max_tokens: 16,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      // llama-server extension: generate exactly max_tokens even if the random model emits EOS.
      ...({ ignore_eos: true } as object),
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    console.log(`real llama-server: cold-start streamed chat took ${Math.round(performance.now() - t0)} ms, ${usage?.completion_tokens} tokens: ${JSON.stringify(text.slice(0, 60))}`);
    expect(usage?.completion_tokens).toBe(16);
    expect(text.length).toBeGreaterThan(0);
    expect(srv.services.supervisor.runtimeOf("tiny")?.state).toBe("running");
    const stats = srv.services.requests.snapshot().perModel.tiny!;
    expect(stats.completionTokens).toBe(16);
    expect(stats.tokensPerSecond).toBeGreaterThan(0);
  }, 120_000);

  test("a client that disconnects mid-stream frees llama-server's slot", async () => {
    const rt = srv.services.supervisor.runtimeOf("tiny")!;
    const ac = new AbortController();
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 400, ignore_eos: true, temperature: 0, stream: true }),
      signal: ac.signal,
    });
    await res.body!.getReader().read();
    ac.abort();
    await waitFor(async () => {
      const slots = await (await fetch(`${rt.baseUrl}/slots`, { headers: childAuthHeaders(rt.baseUrl!) })).json();
      return Array.isArray(slots) && slots.every((s: any) => !s.is_processing);
    }, "llama-server to stop generating", 10_000, 25);
  }, 60_000);

  test("/upstream/:id/props reaches llama-server itself", async () => {
    const props = await (await fetch(`${srv.url}/upstream/tiny/props`)).json();
    expect(props.default_generation_settings.n_ctx).toBe(512);
  });
});
