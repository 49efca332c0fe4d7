import { describe, expect, test } from "bun:test";
import { CaptureStore, keepText, truncationMarker } from "../../src/activity/captures";
import { EventBus } from "../../src/events";
import type { LlamaServerConfig } from "../../src/config/schema";

const meta = (requestId: string) => ({ requestId, route: "/v1/chat/completions", model: "m" });
const json = (body: string) => new Response(body, { headers: { "content-type": "application/json" } });
const stream = (chunks: string[], opts: { failAfter?: boolean } = {}) => {
  const enc = new TextEncoder();
  let i = 0;
  return new Response(
    new ReadableStream<Uint8Array>({
      pull(c) {
        if (i < chunks.length) return c.enqueue(enc.encode(chunks[i++]!));
        if (opts.failAfter) return c.error(new Error("upstream died"));
        c.close();
      },
    }),
    { headers: { "content-type": "text/event-stream" } },
  );
};

describe("CaptureStore", () => {
  test("off (bound 0): the response is passed through untouched and nothing is kept", async () => {
    const store = new CaptureStore(() => 0);
    const res = json('{"a":1}');
    expect(store.capture(meta("r1"), '{"q":1}', res)).toBe(res);
    expect(store.enabled).toBe(false);
    expect(store.get("r1")).toBeUndefined();
    expect(store.stats()).toEqual({ captures: 0, bytes: 0, maxBytes: 0 });
  });

  test("request and response bodies kept, the client gets the body unchanged", async () => {
    const store = new CaptureStore(() => 10_000);
    const res = store.capture({ ...meta("r1"), requestContentType: "application/json" }, '{"model":"m","messages":[]}', json('{"choices":[]}'));
    expect(await res.text()).toBe('{"choices":[]}');
    expect(store.get("r1")).toMatchObject({
      requestId: "r1", route: "/v1/chat/completions", model: "m", status: 200, streamed: false, complete: true,
      request: { text: '{"model":"m","messages":[]}', bytes: 27, keptBytes: 27, truncated: false, contentType: "application/json" },
      response: { text: '{"choices":[]}', bytes: 14, keptBytes: 14, truncated: false, contentType: "application/json" },
    });
    expect(store.stats()).toEqual({ captures: 1, bytes: 41, maxBytes: 10_000 });
  });

  test("the bound: past it the oldest captures go; the kept bytes never exceed it", async () => {
    const store = new CaptureStore(() => 1000);
    const sizes: number[] = [];
    for (let i = 1; i <= 6; i++) {
      await store.capture(meta(`r${i}`), "q".repeat(200), json("a".repeat(100))).text();
      sizes.push(store.stats().bytes);
      expect(store.stats().bytes).toBeLessThanOrEqual(1000);
    }
    // 300 bytes each: three fit (900), the fourth evicts the first, and so on.
    expect(sizes).toEqual([300, 600, 900, 900, 900, 900]);
    expect(["r1", "r2", "r3"].map((id) => store.has(id))).toEqual([false, false, false]);
    expect(["r4", "r5", "r6"].map((id) => store.has(id))).toEqual([true, true, true]);
  });

  test("a body larger than the bound keeps its start (half the bound) and a marker", async () => {
    const store = new CaptureStore(() => 1000);
    const res = store.capture(meta("big"), "x".repeat(5000), json("y".repeat(3000)));
    // The client still gets every byte.
    expect((await res.text()).length).toBe(3000);
    const c = store.get("big")!;
    expect(c.request).toMatchObject({ bytes: 5000, keptBytes: 500, truncated: true });
    expect(c.request.text).toBe("x".repeat(500) + truncationMarker(4500));
    expect(c.response).toMatchObject({ bytes: 3000, keptBytes: 500, truncated: true });
    expect(c.response.text).toBe("y".repeat(500) + truncationMarker(2500));
    expect(store.stats().bytes).toBe(1000);
  });

  test("a streamed response is kept as relayed, chunk by chunk; a stream the client left is incomplete", async () => {
    const store = new CaptureStore(() => 10_000);
    const chunks = ['data: {"a":1}\n\n', 'data: {"a":2}\n\n', "data: [DONE]\n\n"];
    const res = store.capture(meta("s1"), "{}", stream(chunks));
    // While it streams, what was relayed so far is readable.
    const reader = res.body!.getReader();
    await reader.read();
    expect(store.get("s1")).toMatchObject({ streamed: true, complete: false, response: { text: chunks[0] } });
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toBe(chunks[1]! + chunks[2]!);
    expect(store.get("s1")).toMatchObject({ complete: true, response: { text: chunks.join(""), truncated: false } });

    const left = store.capture(meta("s2"), "{}", stream(chunks));
    const r2 = left.body!.getReader();
    await r2.read();
    await r2.cancel();
    expect(store.get("s2")).toMatchObject({ complete: false, response: { text: chunks[0] } });

    // The relay ends the stream normally after a client left (it aborted upstream): incomplete too.
    const gone = new AbortController();
    gone.abort();
    const r3 = store.capture({ ...meta("s3"), clientSignal: gone.signal }, "{}", stream(chunks));
    await r3.text();
    expect(store.get("s3")).toMatchObject({ complete: false, response: { text: chunks.join("") } });
  });

  test("a long stream is bounded: the first half-bound bytes, then the marker; the live total counts as it grows", async () => {
    const store = new CaptureStore(() => 200);
    const chunks = Array.from({ length: 20 }, (_, i) => `data: ${String(i).padStart(3, "0")}\n\n`); // 11 bytes each
    const res = store.capture(meta("long"), "", stream(chunks));
    expect(await res.text()).toBe(chunks.join(""));
    const c = store.get("long")!;
    expect(c.response).toMatchObject({ bytes: 220, keptBytes: 100, truncated: true });
    expect(c.response.text).toBe(chunks.join("").slice(0, 100) + truncationMarker(120));
    expect(store.stats().bytes).toBe(100);
  });

  test("a reused request id keeps the newest; a lowered bound (config.changed) trims at once", async () => {
    let max = 10_000;
    const bus = new EventBus();
    const store = new CaptureStore(() => max, bus);
    await store.capture(meta("same"), "first", json("1")).text();
    await store.capture(meta("same"), "second", json("2")).text();
    expect(store.get("same")!.request.text).toBe("second");
    expect(store.stats()).toEqual({ captures: 1, bytes: 7, maxBytes: 10_000 });
    await store.capture(meta("other"), "z".repeat(100), json("")).text();
    max = 50;
    bus.emit("config.changed", {} as LlamaServerConfig);
    expect(store.has("same")).toBe(false);
    expect(store.has("other")).toBe(false);
    expect(store.stats().bytes).toBe(0);
    max = 0;
    bus.emit("config.changed", {} as LlamaServerConfig);
    expect(store.stats().captures).toBe(0);
  });
});

test("keepText cuts by UTF-8 bytes and stays valid text", () => {
  expect(keepText("héllo", 100, null)).toEqual({ text: "héllo", bytes: 6, keptBytes: 6, truncated: false, contentType: null });
  const cut = keepText("ééé", 3, null); // 6 bytes; the cut falls inside the second é
  expect(cut.keptBytes).toBe(3);
  expect(cut.text).toBe("é\uFFFD" + truncationMarker(3));
});
