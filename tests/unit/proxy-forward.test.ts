import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { downstreamResponseHeaders, parseUsage, passThrough, upstreamRequestHeaders } from "../../src/proxy/forward";

const FIXTURES = join(import.meta.dir, "../fixtures/llama-server");
const chatSse = readFileSync(join(FIXTURES, "chat-stream.sse"));
const completionSse = readFileSync(join(FIXTURES, "completion-stream.sse"));
const chatJson = readFileSync(join(FIXTURES, "chat.json"), "utf8");

/** A stream that yields `bytes` split at random points, like TCP would. */
function chunked(bytes: Uint8Array, seed: number): ReadableStream<Uint8Array> {
  let pos = 0;
  let x = seed;
  return new ReadableStream({
    pull(c) {
      if (pos >= bytes.length) return c.close();
      x = (x * 1103515245 + 12345) % 2147483648;
      const n = 1 + (x % 300);
      c.enqueue(bytes.slice(pos, pos + n));
      pos += n;
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>) {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

describe("passThrough", () => {
  for (const [name, bytes] of [["chat-stream.sse", chatSse], ["completion-stream.sse", completionSse]] as const) {
    test(`bytes out = bytes in for ${name}, and usage is read from the tail`, async () => {
      for (const seed of [1, 7, 42]) {
        let outcome: any;
        let firstChunks = 0;
        const out = passThrough(chunked(bytes, seed), { onEnd: (o) => (outcome = o), onFirstChunk: () => firstChunks++ }, { sse: true, upstreamAbort: new AbortController() });
        const got = await collect(out);
        expect(Buffer.from(got).equals(Buffer.from(bytes))).toBe(true);
        expect(firstChunks).toBe(1);
        expect(outcome.aborted).toBe(false);
        expect(outcome.failed).toBe(false);
        if (name === "chat-stream.sse") {
          expect(outcome).toMatchObject({ promptTokens: 29, completionTokens: 4, generationMs: 1.254 });
        } else {
          expect(outcome.completionTokens).toBe(4);
          expect(outcome.generationMs).toBe(7.086);
        }
      }
    });
  }

  test("an upstream that dies mid-stream ends the client stream with an SSE error event", async () => {
    let n = 0;
    const dying = new ReadableStream<Uint8Array>({
      pull(c) {
        if (n++ === 0) c.enqueue(new TextEncoder().encode('data: {"choices":[]}\n\n'));
        else c.error(new Error("socket closed"));
      },
    });
    let outcome: any;
    const text = await new Response(passThrough(dying, { onEnd: (o) => (outcome = o) }, { sse: true, upstreamAbort: new AbortController() })).text();
    expect(text.startsWith('data: {"choices":[]}\n\n')).toBe(true);
    const last = JSON.parse(text.trim().split("\n\n").at(-1)!.slice(6));
    expect(last.error.message).toContain("socket closed");
    expect(outcome.failed).toBe(true);
  });

  test("a JSON (non-SSE) body cut short fails the client's read instead of looking complete", async () => {
    let n = 0;
    const dying = new ReadableStream<Uint8Array>({
      pull(c) {
        if (n++ === 0) c.enqueue(new TextEncoder().encode('{"choices":[{"text":"par'));
        else c.error(new Error("socket closed"));
      },
    });
    let outcome: any;
    const body = passThrough(dying, { onEnd: (o) => (outcome = o) }, { sse: false, upstreamAbort: new AbortController() });
    await expect(new Response(body).text()).rejects.toThrow();
    expect(outcome.failed).toBe(true);
  });

  test("a client that cancels aborts the upstream request once", async () => {
    const upstreamAbort = new AbortController();
    const never = new ReadableStream<Uint8Array>({ start(c) { c.enqueue(new Uint8Array([100, 97])); } });
    const ends: any[] = [];
    const out = passThrough(never, { onEnd: (o) => ends.push(o) }, { sse: true, upstreamAbort });
    const reader = out.getReader();
    await reader.read();
    await reader.cancel();
    expect(upstreamAbort.signal.aborted).toBe(true);
    expect(ends).toHaveLength(1);
    expect(ends[0].aborted).toBe(true);
  });
});

describe("parseUsage", () => {
  test("reads OpenAI usage and llama-server timings from a non-streamed body", () => {
    expect(parseUsage(chatJson)).toEqual({
      promptTokens: 29, completionTokens: 4, generationMs: 7.712,
      // The real server's cache hit (usage.prompt_tokens_details.cached_tokens = timings.cache_n) and its speeds.
      cachedTokens: 28, promptN: 1, promptPerSecond: 1545.5950540958268, predictedPerSecond: 389.00414937759336,
    });
  });
  test("is empty when the body says nothing", () => {
    expect(parseUsage('{"tokens":[1,2,3]}')).toEqual({});
  });
});

describe("headers", () => {
  test("hop-by-hop and credential headers are not forwarded; SSE gets no-buffering headers", () => {
    const up = upstreamRequestHeaders(new Headers({ connection: "keep-alive", authorization: "Bearer k", "content-type": "application/json", "x-custom": "1" }));
    expect(up.get("connection")).toBeNull();
    expect(up.get("authorization")).toBeNull();
    expect(up.get("content-type")).toBe("application/json");
    expect(up.get("x-custom")).toBe("1");
    const down = downstreamResponseHeaders(new Headers({ "content-type": "text/event-stream", "content-length": "5", server: "llama.cpp" }), true);
    expect(down.get("x-accel-buffering")).toBe("no");
    expect(down.get("cache-control")).toBe("no-cache");
    expect(down.get("content-length")).toBeNull();
    expect(down.get("content-type")).toBe("text/event-stream");
  });
});
