import { afterEach, describe, expect, test } from "bun:test";
import { startTestServer, waitFor, type TestServer } from "./realtime-helpers";

// The Engine.IO 4 / Socket.IO 5 wire format, spoken by hand with fetch and WebSocket, for the
// cases socket.io-client never produces (bad input, overlapping polls, dead clients).

let server: TestServer | undefined;
const opened: WebSocket[] = [];
afterEach(async () => {
  for (const ws of opened.splice(0)) ws.close();
  await server?.cleanup();
  server = undefined;
});

const SEP = "\x1e";

async function handshake(s: TestServer) {
  const base = `${s.url}/llamaproxws/?EIO=4&transport=polling`;
  const res = await fetch(base);
  const body = await res.text();
  const open = JSON.parse(body.slice(1)) as { sid: string; upgrades: string[]; pingInterval: number; pingTimeout: number; maxPayload: number };
  const url = `${base}&sid=${open.sid}`;
  return {
    res,
    body,
    open,
    url,
    post: async (payload: string) => (await fetch(url, { method: "POST", body: payload })).text(),
    get: async () => (await fetch(url)).text(),
  };
}

describe("Engine.IO polling", () => {
  test("handshake answers the open packet with sid, upgrades, heartbeat and maxPayload", async () => {
    server = await startTestServer({ pingIntervalMs: 25_000, pingTimeoutMs: 20_000, hardMaxMessageBytes: 1_000_000 });
    const h = await handshake(server);
    expect(h.res.status).toBe(200);
    expect(h.res.headers.get("content-type")).toBe("text/plain; charset=UTF-8");
    expect(h.body[0]).toBe("0");
    expect(h.open).toEqual({ sid: expect.any(String), upgrades: ["websocket"], pingInterval: 25_000, pingTimeout: 20_000, maxPayload: 1_000_000 });
    // Without the trailing slash too.
    const again = await fetch(`${server.url}/llamaproxws?EIO=4&transport=polling`);
    expect((await again.text())[0]).toBe("0");
  });

  test("protocol errors use Engine.IO's codes", async () => {
    server = await startTestServer();
    const at = (q: string, init?: RequestInit) => fetch(`${server!.url}/llamaproxws/?${q}`, init).then(async (r) => [r.status, await r.json()]);
    expect(await at("EIO=3&transport=polling")).toEqual([400, { code: 5, message: "Unsupported protocol version" }]);
    expect(await at("EIO=4&transport=flash")).toEqual([400, { code: 0, message: "Transport unknown" }]);
    expect(await at("EIO=4&transport=polling&sid=nope")).toEqual([400, { code: 1, message: "Session ID unknown" }]);
    expect(await at("EIO=4&transport=polling", { method: "POST", body: "40" })).toEqual([400, { code: 2, message: "Bad handshake method" }]);
    expect((await at("EIO=4&transport=websocket"))[0]).toBe(400);
  });

  test("connect, subscribe and the state come back batched in one long-poll answer", async () => {
    server = await startTestServer();
    const h = await handshake(server);
    expect(await h.post(`40${SEP}42["subscribe",{"type":"models"}]${SEP}421["ping"]`)).toBe("ok");
    const packets = (await h.get()).split(SEP);
    expect(packets[0]).toMatch(/^40\{"sid":"[\w-]+"\}$/);
    expect(packets[1]).toMatch(/^42\["models_update",\{"models":\[\],"timestamp":"/);
    expect(packets[2]).toMatch(/^431\[\{"ok":true,"timestamp":"/);
  });

  test("a held GET is answered as soon as there is something to send", async () => {
    server = await startTestServer();
    const h = await handshake(server);
    await h.post("40");
    expect(await h.get()).toMatch(/^40/);
    const held = h.get();
    await waitFor(() => server!.services.hub.clients()[0]?.heldPoll, "the GET to be held");
    await h.post(`42["subscribe",{"type":"metrics"}]`);
    expect(await held).toMatch(/^42\["metrics_update",\{"timestamp"/);
  });

  test("bad packets get an error event and the session stays", async () => {
    server = await startTestServer({ maxMessageBytes: 1024, hardMaxMessageBytes: 4096 });
    const h = await handshake(server);
    await h.post("40");
    await h.get();
    const errorsOf = (body: string) =>
      body.split(SEP).filter((p) => p.startsWith('42["error"')).map((p) => (JSON.parse(p.slice(2)) as [string, { code: string; message: string; details?: string }])[1]);
    const cases: [string, RegExp][] = [
      ["42[broken", /Malformed Socket.IO packet/],
      ['45-["subscribe",{"_placeholder":true,"num":0}]', /Malformed Socket.IO packet/],
      ['42{"not":"an array"}', /Malformed Socket.IO packet/],
      ["9what", /Unknown Engine.IO packet/],
      [`42["ping","${"x".repeat(2000)}"]`, /Message too large/],
      ["x".repeat(10_000), /Message too large/],
    ];
    for (const [payload, message] of cases) {
      expect(await h.post(payload)).toBe("ok");
      const errors = errorsOf(await h.get());
      expect(errors).toHaveLength(1);
      expect(errors[0]!.code).toBe("VALIDATION_ERROR");
      expect(errors[0]!.message).toMatch(message);
    }
    await h.post(`40/admin,`);
    expect(await h.get()).toBe('44/admin,{"message":"Invalid namespace"}');
    await h.post(`421["ping"]`);
    expect(await h.get()).toMatch(/^431\[\{"ok":true/);
  });

  test("two GETs at once close the session (as Engine.IO does)", async () => {
    server = await startTestServer();
    const h = await handshake(server);
    const first = h.get();
    await waitFor(() => server!.services.hub.clients()[0]?.heldPoll, "the first GET to be held");
    const second = await fetch(h.url);
    expect(second.status).toBe(400);
    expect(await first).toBe("1");
    expect(server.services.hub.stats().connected_clients).toBe(0);
  });

  test("a client that stops answering pings is closed after pingInterval + pingTimeout", async () => {
    server = await startTestServer({ pingIntervalMs: 30, pingTimeoutMs: 30 });
    const h = await handshake(server);
    await h.post("40");
    expect(server.services.hub.stats().connected_clients).toBe(1);
    await waitFor(() => server!.services.hub.stats().connected_clients === 0, "ping timeout");
    expect((await fetch(h.url)).status).toBe(400);
  });

  test("upgrade by hand: 2probe/3probe, the held GET gets a noop, then 5 moves the session", async () => {
    server = await startTestServer();
    const h = await handshake(server);
    await h.post("40");
    await h.get();
    const held = h.get();
    await waitFor(() => server!.services.hub.clients()[0]?.heldPoll, "the GET to be held");
    const ws = new WebSocket(`${server.wsUrl}/?EIO=4&transport=websocket&sid=${h.open.sid}`);
    opened.push(ws);
    const frames: string[] = [];
    ws.onmessage = (e) => frames.push(String(e.data));
    await new Promise((r) => (ws.onopen = r));
    ws.send("2probe");
    await waitFor(() => frames.includes("3probe"), "3probe");
    expect(await held).toBe("6");
    ws.send("5");
    ws.send(`42["subscribe",{"type":"models"}]`);
    await waitFor(() => frames.some((f) => f.startsWith('42["models_update"')), "state over the websocket");
    expect(server.services.hub.clients()[0]!.transport).toBe("websocket");
    // Polling is over for this session.
    expect((await fetch(h.url)).status).toBe(400);
  });
});
