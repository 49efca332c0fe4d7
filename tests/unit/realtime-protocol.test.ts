import { describe, expect, test } from "bun:test";
import type { ConnectionHost } from "../../src/realtime/connection";
import { decodePayload, encodePayload, readBodyCapped } from "../../src/realtime/engineio";
import { encodePlain, parsePlainMessage, PlainConnection } from "../../src/realtime/plain";
import { DEFAULT_REALTIME_OPTIONS } from "../../src/realtime/types";
import { decodeSocketIoPacket, encodeSocketIoEvent } from "../../src/realtime/socketio";
import { waitFor } from "../helpers/services";

describe("plain protocol parsing", () => {
  test("subscribe, unsubscribe and ping become commands; requestId is kept", () => {
    expect(parsePlainMessage(JSON.stringify({ type: "subscribe", data: { type: "logs" }, timestamp: 1, requestId: "r" }))).toEqual({
      ok: true,
      command: { kind: "subscribe", topic: "logs" },
      requestId: "r",
    });
    expect(parsePlainMessage(`{"type":"unsubscribe","data":{"type":"models"}}`)).toEqual({ ok: true, command: { kind: "unsubscribe", topic: "models" } });
    expect(parsePlainMessage(`{"type":"ping","requestId":7}`)).toEqual({ ok: true, command: { kind: "ping" }, requestId: 7 });
  });

  test("bad input becomes a VALIDATION_ERROR saying what is wrong", () => {
    const err = (text: string) => {
      const r = parsePlainMessage(text);
      if (r.ok) throw new Error(`accepted ${text}`);
      expect(r.error.code).toBe("VALIDATION_ERROR");
      return r.error.message;
    };
    expect(err("{")).toBe("Malformed JSON");
    expect(err("null")).toBe("Invalid message");
    expect(err(`{"type":""}`)).toBe("Invalid message");
    expect(err(`{"type":"jump"}`)).toBe('Unknown message type "jump"');
    expect(err(`{"type":"subscribe","data":{"type":"gpu"}}`)).toBe('Unknown subscription "gpu"; expected one of metrics, models, logs, requests, activity');
    expect(err(`{"type":"subscribe","data":"metrics"}`)).toBe("Invalid subscription");
    expect(err(`{"type":"subscribe","requestId":{"x":1}}`)).toBe("Invalid message");
  });

  test("encodePlain writes the WebSocketMessage shape", () => {
    expect(JSON.parse(encodePlain("pong", `{"a":1}`, "id", 123))).toEqual({ type: "pong", data: { a: 1 }, timestamp: 123, requestId: "id" });
    expect(JSON.parse(encodePlain("x", "null", undefined, 5))).toEqual({ type: "x", data: null, timestamp: 5 });
  });
});

describe("Socket.IO packets", () => {
  test("decodes connect, events with ack ids, namespaces and acks", () => {
    expect(decodeSocketIoPacket("0")).toEqual({ ok: true, packet: { type: 0, nsp: "/" } });
    expect(decodeSocketIoPacket(`0{"token":"t"}`)).toEqual({ ok: true, packet: { type: 0, nsp: "/", data: { token: "t" } } });
    expect(decodeSocketIoPacket("0/admin,")).toEqual({ ok: true, packet: { type: 0, nsp: "/admin" } });
    expect(decodeSocketIoPacket(`2["subscribe",{"type":"metrics"}]`)).toEqual({
      ok: true,
      packet: { type: 2, nsp: "/", data: ["subscribe", { type: "metrics" }] },
    });
    expect(decodeSocketIoPacket(`212["ping"]`)).toEqual({ ok: true, packet: { type: 2, nsp: "/", id: 12, data: ["ping"] } });
    expect(decodeSocketIoPacket(`2/chat,3["x"]`)).toEqual({ ok: true, packet: { type: 2, nsp: "/chat", id: 3, data: ["x"] } });
    expect(decodeSocketIoPacket("1")).toEqual({ ok: true, packet: { type: 1, nsp: "/" } });
  });

  test("refuses what it cannot handle, with a reason", () => {
    expect(decodeSocketIoPacket("")).toEqual({ ok: false, reason: "unknown packet type" });
    expect(decodeSocketIoPacket("9")).toEqual({ ok: false, reason: "unknown packet type" });
    expect(decodeSocketIoPacket("2[oops")).toEqual({ ok: false, reason: "malformed JSON" });
    expect(decodeSocketIoPacket(`51-["a",{"_placeholder":true,"num":0}]`)).toEqual({ ok: false, reason: "binary packets are not supported" });
    expect(decodeSocketIoPacket(`2{"a":1}`).ok).toBe(false);
    expect(decodeSocketIoPacket(`2[1,2]`).ok).toBe(false);
  });

  test("event encoding round-trips through the decoder", () => {
    const text = encodeSocketIoEvent("metrics_update", JSON.stringify({ cpu: { usage: 1.5 } }));
    expect(text).toBe(`2["metrics_update",{"cpu":{"usage":1.5}}]`);
    expect(decodeSocketIoPacket(text)).toEqual({ ok: true, packet: { type: 2, nsp: "/", data: ["metrics_update", { cpu: { usage: 1.5 } }] } });
  });
});

describe("Engine.IO payloads", () => {
  test("packets are joined and split on the record separator", () => {
    expect(encodePayload(["40", `42["a"]`, "2"])).toBe(`40\x1e42["a"]\x1e2`);
    expect(decodePayload(`40\x1e42["a"]\x1e2`)).toEqual(["40", `42["a"]`, "2"]);
    expect(decodePayload("")).toEqual([]);
  });

  test("readBodyCapped reads small bodies and stops at the cap, declared or streamed", async () => {
    expect(await readBodyCapped(new Request("http://x/", { method: "POST", body: "hello" }), 10)).toBe("hello");
    expect(await readBodyCapped(new Request("http://x/", { method: "POST", body: "x".repeat(11) }), 10)).toBeNull();
    let pulls = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls++;
        controller.enqueue(new Uint8Array(1024));
      },
    });
    const req = new Request("http://x/", { method: "POST", body: endless, duplex: "half" } as RequestInit);
    expect(await readBodyCapped(req, 4096)).toBeNull();
    expect(pulls).toBeLessThan(10);
  });
});


describe("per-connection rate limit", () => {
  function connection(rate: number, burst: number) {
    const sent: string[] = [];
    const ctx: ConnectionHost = {
      options: {
        ...DEFAULT_REALTIME_OPTIONS,
        maxMessageBytes: 1000,
        slowConsumerBytes: 1000,
        rateLimitPerSecond: rate,
        rateLimitBurst: burst,
        floodCloseDrops: 1000,
      },
      countMessages: () => {},
      warn: () => {},
      onClosed: () => {},
      execute: () => ({ ok: true, reply: { type: "pong", data: {} } }),
    };
    const conn = new PlainConnection("c1", ctx);
    const reading = { paused: 0, resumed: 0 };
    conn.onOpen({
      send: (t: string) => (sent.push(t), t.length),
      getBufferedAmount: () => 0,
      pause: () => reading.paused++,
      resume: () => reading.resumed++,
      close: () => {},
    } as never);
    return { conn, sent, reading };
  }

  test("admits the burst, then drops with one RATE_LIMITED notice carrying retryIn, pausing reads", async () => {
    const { conn, sent, reading } = connection(2, 5);
    const admitted = Array.from({ length: 50 }, () => conn.admit()).filter(Boolean).length;
    expect(admitted).toBe(5);
    expect(conn.dropped).toBe(45);
    expect(sent).toHaveLength(1);
    const notice = JSON.parse(sent[0]!);
    expect(notice.type).toBe("error");
    expect(notice.data.code).toBe("RATE_LIMITED");
    expect(notice.data.retryIn).toBeGreaterThan(0);
    expect(notice.data.retryIn).toBeLessThanOrEqual(500);
    // The socket stops being read until a token is back, then reads again.
    expect(reading.paused).toBe(1);
    await waitFor(() => reading.resumed === 1, "reading to resume", 3000);
    expect(conn.admit()).toBe(true);
    conn.close(1000, "done");
  });
});
