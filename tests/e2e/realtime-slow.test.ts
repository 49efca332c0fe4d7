import { afterEach, expect, test } from "bun:test";
import { connect as tcpConnect, type Socket } from "node:net";
import { startTestServer, waitFor, type TestServer } from "./realtime-helpers";

// Slow consumers: a client that stops reading is closed with a reason once more than
// slowConsumerBytes wait for it, so the server never buffers without bound.

let server: TestServer | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.cleanup();
  server = undefined;
});

/** A masked client text frame (RFC 6455), as a browser would send it. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([header, mask, masked]);
}

/** Server frames in `data` (unmasked): returns the close frame's code and reason if present. */
function findClose(data: Buffer): { code: number; reason: string } | undefined {
  let i = 0;
  while (i + 2 <= data.length) {
    const opcode = data[i]! & 0x0f;
    let len = data[i + 1]! & 0x7f;
    let off = i + 2;
    if (len === 126) { len = data.readUInt16BE(off); off += 2; }
    else if (len === 127) { len = Number(data.readBigUInt64BE(off)); off += 8; }
    if (off + len > data.length) return undefined;
    if (opcode === 0x8) return { code: data.readUInt16BE(off), reason: data.subarray(off + 2, off + len).toString() };
    i = off + len;
  }
  return undefined;
}

test("a WebSocket client that stops reading is closed with a reason", async () => {
  server = await startTestServer({ slowConsumerBytes: 256 * 1024, logsIntervalMs: 60_000 });
  const { port } = server.services.server;
  const sock = tcpConnect(port, "127.0.0.1");
  sockets.push(sock);
  const received: Buffer[] = [];
  sock.on("data", (d: Buffer) => received.push(d));
  await new Promise((r) => sock.once("connect", r));
  sock.write(
    "GET /llamaproxws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  await waitFor(() => Buffer.concat(received).includes("\r\n\r\n"), "upgrade response");
  expect(Buffer.concat(received).toString()).toStartWith("HTTP/1.1 101");
  sock.write(clientFrame(JSON.stringify({ type: "subscribe", data: { type: "logs" } })));
  const hub = server.services.hub;
  await waitFor(() => hub.stats().active_connections === 1, "subscription");
  // Stop reading: the kernel buffers fill, then Bun's, then ours would.
  sock.pause();
  const line = "x".repeat(8 * 1024);
  for (let round = 0; round < 400 && hub.stats().connected_clients > 0; round++) {
    for (let i = 0; i < 32; i++) server.services.logs.append("info", "test", line);
    hub.flushLogs();
    await new Promise((r) => setImmediate(r));
  }
  expect(hub.stats().connected_clients).toBe(0);
  // Read again: what was queued drains and ends with the close frame and its reason.
  sock.resume();
  const close = await waitFor(() => findCloseIn(received), "close frame", 10_000);
  expect(close.code).toBe(1008);
  expect(close.reason).toMatch(/^Slow consumer: \d+ bytes unsent \(limit 262144\)/);
});

function findCloseIn(chunks: Buffer[]) {
  const all = Buffer.concat(chunks);
  const start = all.indexOf("\r\n\r\n") + 4;
  return findClose(all.subarray(start));
}

test("a polling session that stops polling is dropped once its queue passes the bound", async () => {
  server = await startTestServer({ slowConsumerBytes: 64 * 1024, logsIntervalMs: 60_000 });
  const base = `${server.url}/llamaproxws/?EIO=4&transport=polling`;
  const open = await (await fetch(base)).text();
  const { sid } = JSON.parse(open.slice(1)) as { sid: string };
  await fetch(`${base}&sid=${sid}`, { method: "POST", body: `40\x1e42["subscribe",{"type":"logs"}]` });
  const hub = server.services.hub;
  await waitFor(() => hub.stats().active_connections === 1, "subscription");
  // Never GET again: queue logs until the session is dropped.
  for (let round = 0; round < 100 && hub.stats().connected_clients > 0; round++) {
    for (let i = 0; i < 8; i++) server.services.logs.append("info", "test", "y".repeat(4096));
    hub.flushLogs();
  }
  expect(hub.stats().connected_clients).toBe(0);
  const res = await fetch(`${base}&sid=${sid}`);
  expect(res.status).toBe(400);
  expect(await res.json()).toEqual({ code: 1, message: "Session ID unknown" });
});
