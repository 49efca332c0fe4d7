import { afterAll, beforeAll, expect, test } from "bun:test";
import OpenAI from "openai";
import type { RunningServer } from "../../src/server";
import { startProxyWithFakeLlama } from "../helpers/services";

// Per-model request rewriting end to end: the real proxy, the fake llama-server as a real process
// (it echoes temperature in /completion's generation_settings and generates max_tokens tokens).
let srv: RunningServer;
let proxy: Awaited<ReturnType<typeof startProxyWithFakeLlama>>;

beforeAll(async () => {
  proxy = await startProxyWithFakeLlama("rewrite");
  srv = proxy.srv;
  proxy.fakeModel("m", { rewrite: { defaults: { temperature: 0.25 }, overrides: { max_tokens: 3 }, strip: ["n_predict"] } });
});
afterAll(async () => {
  await proxy?.stop();
});

const native = async (body: Record<string, unknown>) => {
  const res = await fetch(`${srv.url}/completion`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m", prompt: "hi", ...body }) });
  expect(res.status).toBe(200);
  return res.json() as Promise<{ tokens_predicted: number; generation_settings: { temperature: number } }>;
};

test("native route: a default fills an absent parameter, never the client's; strip and override apply", async () => {
  const absent = await native({});
  expect(absent.generation_settings.temperature).toBe(0.25);
  expect(absent.tokens_predicted).toBe(3);
  // The client's temperature is kept; its n_predict is stripped, and max_tokens is overridden.
  const sent = await native({ temperature: 0.9, n_predict: 7 });
  expect(sent.generation_settings.temperature).toBe(0.9);
  expect(sent.tokens_predicted).toBe(3);
});

test("/v1 streaming: the override reaches llama-server (3 tokens, whatever the client asked)", async () => {
  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 20_000 });
  const stream = await client.chat.completions.create({
    model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 12, stream: true, stream_options: { include_usage: true },
  });
  let usage: OpenAI.CompletionUsage | undefined | null;
  let pieces = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) pieces++;
    if (chunk.usage) usage = chunk.usage;
  }
  expect(pieces).toBe(3);
  expect(usage?.completion_tokens).toBe(3);
});
