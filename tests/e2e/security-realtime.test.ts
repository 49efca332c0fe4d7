// Finding 8 of #11: a flood of Engine.IO polling handshakes (an <img> is enough to make one)
// held a slot each for ~45 s and locked WebSocket clients out. Now bare handshakes are limited
// per client address, expire fast, and do not count towards maxClients.
import { afterEach, describe, expect, test } from "bun:test";
import io from "socket.io-client";
import { PlainClient, startTestServer, waitFor, type TestServer } from "./realtime-helpers";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.cleanup();
  server = undefined;
});

describe("finding 8: realtime lock-out", () => {
  test("a flood of polling handshakes cannot lock a WebSocket client out; bare handshakes expire", async () => {
    server = await startTestServer({ maxClients: 50, handshakeTimeoutMs: 1500, maxPendingHandshakesPerClient: 16 });
    const SENT = 500;
    const statuses = await Promise.all(
      Array.from({ length: SENT }, () => fetch(`${server!.url}/llamaproxws/?EIO=4&transport=polling`).then(async (r) => (await r.text(), r.status))),
    );
    const accepted = statuses.filter((s) => s === 200).length;
    const refused = statuses.filter((s) => s === 429).length;
    expect(accepted + refused).toBe(SENT);
    expect(accepted).toBeLessThanOrEqual(16);
    // A plain WebSocket client connects at once, flood or not.
    const t0 = performance.now();
    const plain = await PlainClient.connect(server.wsUrl);
    expect((await plain.request({ type: "ping" })).type).toBe("pong");
    const plainMs = Math.round(performance.now() - t0);
    // socket.io-client over WebSocket too.
    const t1 = performance.now();
    const socket = io(server.url, { path: "/llamaproxws", transports: ["websocket"], reconnection: false });
    await new Promise<void>((resolve, reject) => {
      socket.on("connect", () => resolve());
      socket.on("connect_error", reject);
    });
    const socketIoMs = Math.round(performance.now() - t1);
    // The bare handshakes are gone within the bound; the real clients stay.
    await waitFor(() => server!.services.hub.stats().connected_clients === 2, "the bare handshakes to expire", 5000);
    // ...and a socket.io-client on polling connects again once they have.
    const polling = io(server.url, { path: "/llamaproxws", transports: ["polling"], reconnection: false });
    await new Promise<void>((resolve, reject) => {
      polling.on("connect", () => resolve());
      polling.on("connect_error", reject);
    });
    socket.close();
    polling.close();
    plain.close();
    console.log(`[security-realtime] handshakes sent ${SENT}: ${accepted} held (max 16 per address, expired after 1.5 s), ${refused} refused 429; WebSocket client connected in ${plainMs} ms, socket.io-client in ${socketIoMs} ms`);
  });

  test("a real socket.io-client on polling is not a pending handshake once it connected", async () => {
    server = await startTestServer({ handshakeTimeoutMs: 300 });
    const socket = io(server.url, { path: "/llamaproxws", transports: ["polling"], reconnection: false });
    await new Promise<void>((resolve, reject) => {
      socket.on("connect", () => resolve());
      socket.on("connect_error", reject);
    });
    // Well past the handshake bound it is still connected.
    const until = Date.now() + 900;
    await waitFor(() => Date.now() > until, "time to pass", 2000);
    expect(socket.connected).toBe(true);
    expect(server.services.hub.stats().connected_clients).toBe(1);
    socket.close();
  });
});
