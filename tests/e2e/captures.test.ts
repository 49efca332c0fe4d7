import { afterAll, beforeAll, expect, test } from "bun:test";
import OpenAI from "openai";
import { Ollama } from "ollama";
import type { Capture } from "../../src/activity/captures";
import type { RunningServer } from "../../src/server";
import { startProxyWithFakeLlama, waitFor } from "../helpers/services";

// Request/response captures end to end: the real proxy on port 0 with an API key, the real
// supervisor running the fake llama-server (a real process), the openai and ollama npm clients
// and plain fetch, reading captures back through GET /api/activity/:id/capture.
const KEY = "capture-admin-key-0123456789";
const auth = { authorization: `Bearer ${KEY}` };
let srv: RunningServer;

let proxy: Awaited<ReturnType<typeof startProxyWithFakeLlama>>;

beforeAll(async () => {
  proxy = await startProxyWithFakeLlama("captures", { apiKey: KEY, activity: { flushMs: 20 } });
  srv = proxy.srv;
  proxy.fakeModel("cap");
});

afterAll(async () => {
  await proxy?.stop();
});

const setCaptureMB = (mb: number) => srv.services.config.update({ ...srv.services.config.get(), captureMaxMB: mb });
const captureOf = async (id: string) => {
  const res = await fetch(`${srv.url}/api/activity/${encodeURIComponent(id)}/capture`, { headers: auth });
  return { status: res.status, body: (await res.json()) as { success: boolean; data: Capture; error?: { code: string; message: string; details?: string } } };
};
const chat = (id: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...auth, "x-request-id": id, ...headers }, body: JSON.stringify({ model: "cap", ...body }) });

test("off by default: nothing is captured and the route says why", async () => {
  expect(srv.services.config.get().captureMaxMB).toBe(0);
  const res = await chat("off-1", { max_tokens: 2, messages: [{ role: "user", content: "hi" }] });
  expect(res.status).toBe(200);
  await res.text();
  const got = await captureOf("off-1");
  expect(got.status).toBe(404);
  expect(got.body.error).toMatchObject({ code: "NOT_FOUND", message: "No capture for this request", details: expect.stringContaining("Captures are off") });
  expect(srv.services.captures.stats().captures).toBe(0);
}, 20_000);

test("on: request and response bodies as sent and received; never a key or an auth header", async () => {
  setCaptureMB(1);
  const sent = JSON.stringify({ model: "cap", max_tokens: 3, messages: [{ role: "user", content: "<b>hello</b> & bye" }] });
  const res = await fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${KEY}`, "x-api-key": KEY, cookie: "lap_session=abc", "x-request-id": "json-1" },
    body: sent,
  });
  const received = await res.text();
  expect(res.status).toBe(200);
  const { status, body } = await captureOf("json-1");
  expect(status).toBe(200);
  expect(body.data).toMatchObject({
    requestId: "json-1", route: "/v1/chat/completions", model: "cap", status: 200, streamed: false, complete: true,
    request: { text: sent, bytes: Buffer.byteLength(sent), truncated: false, contentType: "application/json" },
    response: { text: received, truncated: false },
  });
  const whole = JSON.stringify(body.data);
  expect(whole).not.toContain(KEY);
  expect(whole).not.toContain("lap_session");
  expect(whole.toLowerCase()).not.toContain("authorization");
}, 20_000);

test("a stream is captured as the text relayed to the client (openai client), and so is an Ollama chat", async () => {
  setCaptureMB(1);
  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 20_000 });
  const { data: stream, response } = await client.chat.completions.create({ model: "cap", stream: true, max_tokens: 5, messages: [{ role: "user", content: "count" }] }).withResponse();
  let content = "";
  for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? "";
  const id = response.headers.get("x-request-id")!;
  const { body } = await captureOf(id);
  expect(body.data).toMatchObject({ streamed: true, complete: true, status: 200, response: { contentType: expect.stringContaining("text/event-stream"), truncated: false } });
  expect(body.data.response.text).toContain("data: [DONE]");
  // Every token the client assembled is in the captured stream, in order.
  const deltas = [...body.data.response.text.matchAll(/^data: (\{.*\})$/gm)].map((m) => JSON.parse(m[1]!).choices?.[0]?.delta?.content ?? "").join("");
  expect(deltas).toBe(content);

  // Ollama's /api/chat: the NDJSON the Ollama client read, not llama-server's SSE.
  const res = await fetch(`${srv.url}/api/chat`, { method: "POST", headers: { ...auth, "x-request-id": "ollama-1" }, body: JSON.stringify({ model: "cap", messages: [{ role: "user", content: "hi" }], options: { num_predict: 3 } }) });
  const ndjson = await res.text();
  const o = (await captureOf("ollama-1")).body.data;
  expect(o).toMatchObject({ route: "/api/chat", model: "cap", streamed: true, complete: true, response: { text: ndjson } });
  expect(o.request.text).toContain('"num_predict":3');
  expect(ndjson.trim().split("\n").at(-1)).toContain('"done":true');
  // And through ollama-js (its own request id), the capture has what it sent.
  const ollama = new Ollama({ host: srv.url, headers: auth });
  await ollama.chat({ model: "cap", messages: [{ role: "user", content: "ollama-js here" }], options: { num_predict: 2 } });
  const mine = srv.services.activity.query({ model: "cap" }, 1).entries[0]!;
  expect((await captureOf(mine.requestId)).body.data.request.text).toContain("ollama-js here");
}, 30_000);

test("a client that leaves mid-stream still stops llama-server with captures on; the capture says incomplete", async () => {
  setCaptureMB(1);
  if (!srv.services.registry.get("slowcap")) proxy.fakeModel("slowcap", { extraArgs: ["--fake-token-delay-ms", "30"] });
  const abort = new AbortController();
  const res = await fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth, "x-request-id": "leaver-1" },
    body: JSON.stringify({ model: "slowcap", stream: true, max_tokens: 500, messages: [{ role: "user", content: "go on" }] }),
    signal: abort.signal,
  });
  const reader = res.body!.getReader();
  let seen = "";
  while (!seen.includes("data: {")) seen += new TextDecoder().decode((await reader.read()).value);
  abort.abort();
  await reader.cancel().catch(() => {});
  // llama-server stopped generating: its slot is free long before 500 tokens x 30 ms.
  await waitFor(async () => /llamacpp:requests_processing 0\b/.test(await (await fetch(`${srv.url}/upstream/slowcap/metrics`, { headers: auth })).text()), "llama-server's slot released");
  const c = (await captureOf("leaver-1")).body.data;
  expect(c).toMatchObject({ streamed: true, complete: false });
  expect(c.response.text.startsWith(seen.slice(0, 20))).toBe(true);
}, 30_000);

test("the bound: a body past half of captureMaxMB is truncated with a marker; the store stays within the bound", async () => {
  setCaptureMB(1);
  const big = "z".repeat(700 * 1024);
  const res = await chat("big-1", { max_tokens: 1, messages: [{ role: "user", content: big }] });
  await res.text();
  const c = (await captureOf("big-1")).body.data;
  expect(c.request.truncated).toBe(true);
  expect(c.request.keptBytes).toBe(512 * 1024);
  expect(c.request.bytes).toBeGreaterThan(700 * 1024);
  expect(c.request.text).toEndWith(`[... truncated: ${c.request.bytes - 512 * 1024} more bytes not kept]`);
  // Two more big ones: the oldest captures are evicted, the total never passes 1 MiB.
  for (const id of ["big-2", "big-3"]) await (await chat(id, { max_tokens: 1, messages: [{ role: "user", content: big }] })).text();
  const stats = srv.services.captures.stats();
  expect(stats.bytes).toBeLessThanOrEqual(1024 * 1024);
  expect(stats.maxBytes).toBe(1024 * 1024);
  expect((await captureOf("big-1")).status).toBe(404);
  expect((await captureOf("big-3")).status).toBe(200);
  // Turned off again: everything is dropped at once.
  setCaptureMB(0);
  expect(srv.services.captures.stats()).toMatchObject({ captures: 0, bytes: 0 });
}, 30_000);

test("the route: the API key like every /api route, a bad id is a 400 in the envelope", async () => {
  expect((await fetch(`${srv.url}/api/activity/json-1/capture`)).status).toBe(401);
  const bad = await fetch(`${srv.url}/api/activity/${encodeURIComponent("bad id!")}/capture`, { headers: auth });
  expect(bad.status).toBe(400);
  expect((await bad.json()).error).toMatchObject({ code: "VALIDATION_ERROR", message: "Invalid request id" });
});
