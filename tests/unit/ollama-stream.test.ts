import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { doneReason, OllamaTranslator, SseDataParser, sseToNdjson, upstreamErrorMessage, type RequestClock } from "../../src/ollama/stream";

// Real llama-server answers, captured from the CPU build (shared/fixtures/llama-server).
const FIXTURES = join(import.meta.dir, "../../../shared/fixtures/llama-server");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");

/** A clock where the request took 50 ms, 20 of them waiting for the model. */
const clock = (): RequestClock => ({ startedAt: 1000, now: () => 1050, loadMs: () => 20 });

function events(sse: string): unknown[] {
  const p = new SseDataParser();
  return [...p.push(new TextEncoder().encode(sse)), ...p.end()].filter((d) => d !== "[DONE]").map((d) => JSON.parse(d));
}

describe("SSE data parser", () => {
  test("splits events across chunk boundaries, skips comments, takes CRLF", () => {
    const p = new SseDataParser();
    const enc = new TextEncoder();
    expect(p.push(enc.encode(": loading tiny 2s\n\ndata: {\"a\":"))).toEqual([]);
    expect(p.push(enc.encode("1}\n\ndata: [DONE]\r\n\r\n"))).toEqual(['{"a":1}', "[DONE]"]);
    expect(p.push(enc.encode("data: {\"b\":2}"))).toEqual([]);
    expect(p.end()).toEqual(['{"b":2}']);
  });

  test("a multi-byte character split between chunks survives", () => {
    const p = new SseDataParser();
    const bytes = new TextEncoder().encode('data: {"t":"ета"}\n\n');
    const cut = bytes.indexOf(0xd0) + 1; // inside the first Cyrillic letter
    expect(p.push(bytes.slice(0, cut))).toEqual([]);
    expect(p.push(bytes.slice(cut))).toEqual(['{"t":"ета"}']);
  });
});

describe("llama-server answers -> Ollama answers", () => {
  test.each([
    ["length", "length"],
    ["limit", "length"],
    ["stop", "stop"],
    ["eos", "stop"],
    ["word", "stop"],
    ["tool_calls", "stop"],
    [undefined, "stop"],
  ])("done_reason of %p is %p", (reason, expected) => {
    expect(doneReason(reason)).toBe(expected);
  });

  test("a streamed chat: one message line per token, then done with llama-server's counts in ns", () => {
    const t = new OllamaTranslator("chat", "tiny:latest", clock());
    const out = events(fixture("chat-stream.sse")).flatMap((e) => t.push(e));
    expect(out.map((o) => (o.message as { content: string }).content)).toEqual(["iska", " February", "stav", "oit"]);
    for (const o of out) {
      expect(o).toMatchObject({ model: "tiny:latest", done: false, message: { role: "assistant" } });
      expect(Date.parse(o.created_at as string)).toBeGreaterThan(0);
    }
    const done = t.finish();
    expect(done).toMatchObject({
      model: "tiny:latest",
      message: { role: "assistant", content: "" },
      done: true,
      done_reason: "length",
      total_duration: 50_000_000,
      load_duration: 20_000_000,
      prompt_eval_count: 29, // usage.prompt_tokens: the whole prompt, cached part included
      prompt_eval_duration: 901_000,
      eval_count: 4,
      eval_duration: 1_254_000,
    });
  });

  test("a non-streamed chat answer is one object with the whole message", () => {
    const t = new OllamaTranslator("chat", "tiny", clock(), true);
    expect(t.push(JSON.parse(fixture("chat.json")))).toEqual([]);
    expect(t.finish()).toMatchObject({
      message: { role: "assistant", content: "}_{asisadeshguard" },
      done: true,
      done_reason: "length",
      prompt_eval_count: 29,
      eval_count: 4,
      eval_duration: 7_712_000,
    });
  });

  test("native /completion events (raw generate): response deltas, counts from timings", () => {
    const t = new OllamaTranslator("generate", "tiny", clock());
    const out = events(fixture("completion-stream.sse")).flatMap((e) => t.push(e));
    expect(out.map((o) => o.response)).toEqual([" Thomas", " pelos", " resolve", "ета"]);
    expect(out.every((o) => o.done === false && !("message" in o))).toBe(true);
    expect(t.finish()).toMatchObject({
      response: "",
      done: true,
      done_reason: "length", // stop_type "limit"
      prompt_eval_count: 2, // prompt_n 1 + cache_n 1
      prompt_eval_duration: 1_090_000,
      eval_count: 4,
      eval_duration: 7_086_000,
    });
  });

  test("tool call fragments are sent whole, once, with arguments as an object", () => {
    const t = new OllamaTranslator("chat", "m", clock());
    const chunk = (delta: unknown, finish: string | null = null) => ({ choices: [{ index: 0, delta, finish_reason: finish }] });
    const out = [
      chunk({ role: "assistant", content: null }),
      chunk({ tool_calls: [{ index: 0, id: "call_abc", type: "function", function: { name: "get_weather", arguments: "" } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '"Tokyo"}' } }] }),
      chunk({}, "tool_calls"),
    ].flatMap((c) => t.push(c));
    expect(out).toHaveLength(1);
    expect(out[0]!.message).toEqual({
      role: "assistant",
      content: "",
      tool_calls: [{ id: "call_abc", function: { index: 0, name: "get_weather", arguments: { city: "Tokyo" } } }],
    });
    const done = t.finish();
    expect(done.done_reason).toBe("stop");
    expect((done.message as Record<string, unknown>).tool_calls).toBeUndefined();
  });

  test("non-streamed tool calls and reasoning land in the one message", () => {
    const t = new OllamaTranslator("chat", "m", clock(), true);
    t.push({
      choices: [{
        index: 0,
        finish_reason: "tool_calls",
        message: { role: "assistant", content: "", reasoning_content: "user wants weather", tool_calls: [{ type: "function", id: "c1", function: { name: "w", arguments: '{"city":"Paris"}' } }] },
      }],
    });
    expect(t.finish().message).toEqual({
      role: "assistant",
      content: "",
      thinking: "user wants weather",
      tool_calls: [{ id: "c1", function: { index: 0, name: "w", arguments: { city: "Paris" } } }],
    });
  });

  test("reasoning deltas become `thinking` (chat) and `thinking` beside `response` (generate)", () => {
    const chat = new OllamaTranslator("chat", "m", clock());
    expect(chat.push({ choices: [{ index: 0, delta: { reasoning_content: "hmm" } }] })[0]!.message).toEqual({ role: "assistant", content: "", thinking: "hmm" });
    const gen = new OllamaTranslator("generate", "m", clock());
    expect(gen.push({ choices: [{ index: 0, delta: { reasoning_content: "hmm" } }] })[0]).toMatchObject({ response: "", thinking: "hmm", done: false });
  });

  test("an error event ends the answer with Ollama's error line", () => {
    const t = new OllamaTranslator("chat", "m", clock());
    expect(t.push({ error: { message: "upstream llama-server closed the stream", type: "server_error", code: 502 } })).toEqual([
      { error: "upstream llama-server closed the stream" },
    ]);
    expect(t.done).toBe(true);
    expect(t.push({ choices: [{ index: 0, delta: { content: "late" } }] })).toEqual([]);
  });

  test.each([
    [{ error: { message: "boom", code: 500 } }, "boom"],
    [{ error: "plain" }, "plain"],
    [{ message: "top-level" }, "top-level"],
    ["not json", "fallback"],
  ])("upstreamErrorMessage(%p)", (body, expected) => {
    expect(upstreamErrorMessage(body, "fallback")).toBe(expected);
  });

  test("zero statistics are left out, as Go's omitempty does", () => {
    const t = new OllamaTranslator("generate", "m", { startedAt: 0, now: () => 5, loadMs: () => 0 });
    const done = t.finish();
    expect(done.total_duration).toBe(5_000_000);
    expect("load_duration" in done).toBe(false);
    expect("eval_count" in done).toBe(false);
  });
});

describe("SSE body -> NDJSON body", () => {
  /** An SSE body the test writes into event by event. */
  function controllable() {
    let ctl!: ReadableStreamDefaultController<Uint8Array>;
    let cancelled: unknown = null;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => void (ctl = c),
      cancel: (reason) => void (cancelled = reason ?? "cancelled"),
    });
    const enc = new TextEncoder();
    return { body, send: (s: string) => ctl.enqueue(enc.encode(s)), end: () => ctl.close(), fail: (e: Error) => ctl.error(e), cancelled: () => cancelled };
  }

  test("each token line is readable before the next token is even produced", async () => {
    const src = controllable();
    const reader = sseToNdjson(src.body, new OllamaTranslator("chat", "m", clock())).getReader();
    const dec = new TextDecoder();
    src.send(': loading m 1s\n\n');
    src.send('data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n');
    const first = await reader.read();
    expect(JSON.parse(dec.decode(first.value))).toMatchObject({ message: { content: "Hel" }, done: false });
    src.send('data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n');
    const second = await reader.read();
    expect(JSON.parse(dec.decode(second.value)).message.content).toBe("lo");
    const last = await reader.read();
    expect(JSON.parse(dec.decode(last.value))).toMatchObject({ done: true, done_reason: "stop" });
    expect((await reader.read()).done).toBe(true);
  });

  test("every line is one JSON object ending in \\n; a body without [DONE] still ends with done", async () => {
    const src = controllable();
    const out = new Response(sseToNdjson(src.body, new OllamaTranslator("generate", "m", clock())));
    src.send('data: {"index":0,"content":" a","stop":false}\n\ndata: {"index":0,"content":"","stop":true,"stop_type":"eos"}\n\n');
    src.end();
    const text = await out.text();
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.done)).toEqual([false, true]);
    expect(lines[1].done_reason).toBe("stop");
  });

  test("an upstream that fails mid-stream ends with an error line, not a hang", async () => {
    const src = controllable();
    const out = new Response(sseToNdjson(src.body, new OllamaTranslator("chat", "m", clock())));
    src.send('data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n');
    queueMicrotask(() => src.fail(new Error("socket closed")));
    const lines = (await out.text()).trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1)).toEqual({ error: "llama-server stream failed: socket closed" });
  });

  test("a client that goes away cancels the upstream body", async () => {
    const src = controllable();
    const reader = sseToNdjson(src.body, new OllamaTranslator("chat", "m", clock())).getReader();
    src.send('data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n');
    await reader.read();
    await reader.cancel("client left");
    expect(src.cancelled()).toBe("client left");
  });
});
