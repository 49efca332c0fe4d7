import { afterAll, beforeAll, expect, test } from "bun:test";
import OpenAI from "openai";
import type { ActivityEntry } from "../../src/activity/log";
import type { LiveRequest } from "../../src/activity/tracker";
import type { RunningServer } from "../../src/server";
import { startProxyWithFakeLlama, waitFor } from "../helpers/services";

// The activity log and the live queue end to end: the real proxy on port 0, the real supervisor
// running the fake llama-server (a real process), the openai client and plain fetch.
let srv: RunningServer;
let proxy: Awaited<ReturnType<typeof startProxyWithFakeLlama>>;

beforeAll(async () => {
  proxy = await startProxyWithFakeLlama("activity", { activity: { flushMs: 20 } }, { maxConcurrentRequests: 1, activitySessionHeaders: "X-Session-ID, X-Litellm-Session-Id" });
  srv = proxy.srv;
  proxy.fakeModel("fast", { extraArgs: ["--fake-load-ms", "300"], rewrite: { defaults: { temperature: 0.1 } } });
  proxy.fakeModel("slow", { extraArgs: ["--fake-token-delay-ms", "40"] });
});
afterAll(async () => {
  await proxy?.stop();
});

const api = async <T>(path: string, init?: RequestInit): Promise<{ status: number; body: { success: boolean; data: T; error?: { code: string; details?: string } } }> => {
  const res = await fetch(`${srv.url}${path}`, init);
  return { status: res.status, body: await res.json() };
};
const live = async () => (await api<{ requests: LiveRequest[] }>("/api/requests")).body.data.requests;
const activity = async (q = "") => (await api<{ entries: ActivityEntry[]; nextCursor: string | null }>(`/api/activity${q}`)).body.data;

test("every request is in the activity log with tokens, speeds and timings; X-Request-Id is returned", async () => {
  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 20_000, defaultHeaders: { "X-Litellm-Session-Id": "chat-42" } });
  // The first request loads the model: it shows as "loading" in the live queue meanwhile.
  const first = client.chat.completions.create({ model: "fast", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }).withResponse();
  const loading = await waitFor(async () => (await live()).find((r) => r.model === "fast"), "the request in the live queue");
  expect(loading).toMatchObject({ state: "loading", position: 1, route: "/v1/chat/completions", client: "127.0.0.1", sessionId: "chat-42" });
  const { data, response } = await first;
  expect(data.usage?.completion_tokens).toBe(4);
  expect(response.headers.get("x-request-id")).toBe(loading.id);

  // Streamed, with the client's own request id.
  const res = await fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": "client-chosen-1", "x-session-id": "s-1" },
    body: JSON.stringify({ model: "fast", stream: true, stream_options: { include_usage: true }, max_tokens: 6, messages: [{ role: "user", content: "hello there" }] }),
  });
  expect(res.headers.get("x-request-id")).toBe("client-chosen-1");
  expect(await res.text()).toContain("[DONE]");

  // Unknown model: refused, and logged.
  const unknown = await fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "nope", messages: [] }) });
  expect(unknown.status).toBe(404);
  expect(unknown.headers.get("x-request-id")).toMatch(/^req_/);

  const entries = await waitFor(async () => {
    const e = (await activity()).entries;
    return e.length >= 3 ? e : null;
  }, "three activity rows");
  const [refused, streamed, loaded] = entries;
  expect(refused).toMatchObject({ model: "nope", status: 404, error: "The model 'nope' does not exist" });
  // cachedTokens 2: like the real server, the fake reuses the slot's common prefix with the first
  // request (BOS and "<|im_start|>user"), and says so in timings.cache_n.
  expect(streamed).toMatchObject({ requestId: "client-chosen-1", model: "fast", status: 200, streaming: true, sessionId: "s-1", completionTokens: 6, cachedTokens: 2, loadingMs: 0, error: null, rewritten: ["temperature"] });
  expect(streamed!.promptTokens).toBeGreaterThan(0);
  expect(streamed!.genTps).toBeGreaterThan(0);
  expect(streamed!.promptTps).toBeGreaterThan(0);
  expect(streamed!.ttftMs).toBeGreaterThanOrEqual(0);
  expect(loaded).toMatchObject({ requestId: loading.id, status: 200, streaming: false, sessionId: "chat-42", completionTokens: 4, queuedMs: 0 });
  // It waited for the fake's 300 ms load.
  expect(loaded!.loadingMs).toBeGreaterThanOrEqual(250);
  expect(loaded!.durationMs).toBeGreaterThanOrEqual(loaded!.loadingMs!);

  // Filters, paging, summary, export.
  expect((await activity("?status=4xx")).entries.map((e) => e.model)).toEqual(["nope"]);
  const page = await activity("?limit=2");
  expect(page.entries).toHaveLength(2);
  expect((await activity(`?limit=2&cursor=${page.nextCursor}`)).entries.map((e) => e.requestId)).toEqual([loading.id]);
  const summary = (await api<{ models: { name: string; requests: number; completionTokens: number }[] }>("/api/activity/summary?hours=1")).body.data;
  expect(summary.models.find((m) => m.name === "fast")).toMatchObject({ requests: 2, completionTokens: 10 });
  const csv = await (await fetch(`${srv.url}/api/activity/export?format=csv&model=fast`)).text();
  const lines = csv.trim().split("\n");
  expect(lines[0]).toStartWith("time,requestId,model,route,status");
  expect(lines).toHaveLength(3);
  const ndjson = await fetch(`${srv.url}/api/activity/export?format=ndjson`);
  expect(ndjson.headers.get("content-type")).toBe("application/x-ndjson");
  expect((await ndjson.text()).trim().split("\n").map((l) => JSON.parse(l).model)).toEqual(["nope", "fast", "fast"]);
});

test("bad query parameters: the envelope names them", async () => {
  for (const [q, detail] of [
    ["?limit=0", "limit must be between 1 and 500"],
    ["?limit=abc", "limit must be a whole number"],
    ["?status=teapot", "status must be a status code"],
    ["?since=yesterday", "since must be an ISO 8601 date-time"],
    ["?cursor=-1", "cursor must be the nextCursor"],
  ] as const) {
    const r = await api(`/api/activity${q}`);
    expect(r.status).toBe(400);
    expect(r.body.error?.details).toContain(detail);
  }
  expect((await api("/api/activity/export?format=xml")).body.error?.details).toContain("format must be csv or ndjson");
  expect((await api("/api/activity/summary?hours=0")).status).toBe(400);
  const cancelUnknown = await api("/api/requests/does-not-exist/cancel", { method: "POST", headers: { "content-type": "application/json" } });
  expect(cancelUnknown.status).toBe(404);
  expect((await api("/api/requests/bad%20id/cancel", { method: "POST", headers: { "content-type": "application/json" } })).status).toBe(400);
});

test("cancel: a queued request gets an OpenAI error, a running stream an SSE error event, and llama-server stops", async () => {
  // maxConcurrentRequests is 1: the second request queues behind the first.
  const streamRes = fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": "long-stream" },
    body: JSON.stringify({ model: "slow", stream: true, max_tokens: 500, messages: [{ role: "user", content: "go" }] }),
  });
  const running = await waitFor(async () => (await live()).find((r) => r.id === "long-stream" && r.state === "running" && r.tokens > 0), "the stream running");
  expect(running.position).toBeNull();

  const queuedRes = fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": "waiting-one" },
    body: JSON.stringify({ model: "slow", max_tokens: 3, messages: [{ role: "user", content: "me too" }] }),
  });
  const queued = await waitFor(async () => (await live()).find((r) => r.id === "waiting-one"), "the queued request");
  expect(queued).toMatchObject({ state: "queued", position: 1 });

  const c1 = await api<{ cancelled: boolean }>("/api/requests/waiting-one/cancel", { method: "POST", headers: { "content-type": "application/json" } });
  expect(c1.body.data.cancelled).toBe(true);
  const q = await queuedRes;
  expect(q.status).toBe(499);
  expect(q.headers.get("x-request-id")).toBe("waiting-one");
  expect((await q.json()).error).toMatchObject({ type: "cancelled", code: "request_cancelled" });

  const s = await streamRes;
  expect(s.status).toBe(200);
  const reader = s.body!.getReader();
  const first = await reader.read(); // the stream is flowing
  expect(first.done).toBe(false);
  await api("/api/requests/long-stream/cancel", { method: "POST", headers: { "content-type": "application/json" } });
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += new TextDecoder().decode(value);
  }
  expect(rest).toContain('"code":"request_cancelled"');
  expect(rest).not.toContain("[DONE]");

  // llama-server stopped generating: its slot is free long before 500 tokens x 40 ms.
  await waitFor(async () => {
    const metrics = await (await fetch(`${srv.url}/upstream/slow/metrics`)).text();
    return /llamacpp:requests_processing 0\b/.test(metrics);
  }, "llama-server's slot released");
  expect(await live()).toEqual([]);
  const rows = await waitFor(async () => {
    const e = (await activity("?model=slow")).entries;
    return e.length >= 2 ? e : null;
  }, "the cancelled rows");
  expect(rows.map((r) => [r.requestId, r.status, r.error])).toEqual([
    ["long-stream", 499, "Request long-stream was cancelled by an operator"],
    ["waiting-one", 499, "Request waiting-one was cancelled by an operator"],
  ]);
  const streamRow = rows[0]!;
  expect(streamRow.completionTokens ?? 0).toBeLessThan(500);
});
