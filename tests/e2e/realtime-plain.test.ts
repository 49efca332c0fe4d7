import { afterEach, describe, expect, test } from "bun:test";
import { fakeSupervisorOf, fakeSupervisorOverrides, PlainClient, registerModel, startTestServer, waitFor, type TestServer } from "./realtime-helpers";

// Plain WebSocket clients of /llamaproxws against a real server on port 0.

let server: TestServer | undefined;
const clients: PlainClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.cleanup();
  server = undefined;
});

async function connect(url = server!.wsUrl): Promise<PlainClient> {
  const c = await PlainClient.connect(url);
  clients.push(c);
  return c;
}

describe("plain protocol: subscriptions", () => {
  test("subscribe metrics: the reply echoes requestId, the current state comes at once, then every interval", async () => {
    server = await startTestServer({ metricsIntervalMs: 150 });
    const c = await connect();
    const reply = await c.request({ type: "subscribe", data: { type: "metrics" } }, "req-1");
    expect(reply).toMatchObject({ type: "subscribed", requestId: "req-1", data: { type: "metrics", subscriptions: ["metrics"] } });
    expect(typeof reply.timestamp).toBe("number");
    const first = await c.next((m) => m.type === "metrics_update", "immediate metrics_update");
    // SystemMetrics, as the reference's clients read it.
    expect(typeof first.data.cpu.usage).toBe("number");
    expect(typeof first.data.memory.usagePercent).toBe("number");
    expect(first.data.disk.total).toBeGreaterThan(0);
    expect(first.data.models).toMatchObject({ active: 0, total: 0 });
    expect(first.data.requests).toMatchObject({ total: 0, active: 0 });
    // The periodic ones follow.
    await waitFor(() => c.of("metrics_update").length >= 3, "periodic metrics updates");
  });

  test("a new collector sample goes out at once, whatever the hub's own interval", async () => {
    server = await startTestServer({ metricsIntervalMs: 60_000 });
    const c = await connect();
    await c.request({ type: "subscribe", data: { type: "metrics" } });
    const first = await c.next((m) => m.type === "metrics_update", "state on subscribe");
    const from = c.messages.length;
    const sample = await server.services.collector.sampleNow();
    const pushed = await c.next((m) => m.type === "metrics_update", "metrics_update for the new sample", from);
    expect(pushed.data.timestamp).toBe(sample.timestamp);
    expect(pushed.data.timestamp).not.toBe(first.data.timestamp);
  });

  test("ping answers pong with the same requestId", async () => {
    server = await startTestServer();
    const c = await connect();
    const pong = await c.request({ type: "ping" }, "p-42");
    expect(pong.type).toBe("pong");
    expect(pong.requestId).toBe("p-42");
    expect(Date.parse(pong.data.timestamp)).toBeGreaterThan(0);
  });

  test("after unsubscribe no more updates arrive, while a subscribed client keeps getting them", async () => {
    server = await startTestServer({ metricsIntervalMs: 100 });
    const leaving = await connect();
    const staying = await connect();
    await staying.request({ type: "subscribe", data: { type: "metrics" } });
    await leaving.request({ type: "subscribe", data: { type: "metrics" } });
    await leaving.next((m) => m.type === "metrics_update", "first update");
    const reply = await leaving.request({ type: "unsubscribe", data: { type: "metrics" } });
    expect(reply).toMatchObject({ type: "unsubscribed", data: { type: "metrics", subscriptions: [] } });
    const cut = leaving.messages.length;
    const seen = staying.of("metrics_update").length;
    await waitFor(() => staying.of("metrics_update").length >= seen + 3, "three more updates for the staying client");
    expect(leaving.messages.slice(cut).filter((m) => m.type === "metrics_update")).toHaveLength(0);
  });

  test("models: state on subscribe, and an update at once when a model's status changes", async () => {
    server = await startTestServer({ modelsIntervalMs: 60_000 }, {}, undefined, fakeSupervisorOverrides);
    const s = server.services;
    const supervisor = fakeSupervisorOf(s);
    registerModel(s, "tiny");
    const c = await connect();
    await c.request({ type: "subscribe", data: { type: "models" } });
    const initial = await c.next((m) => m.type === "models_update", "initial models_update");
    expect(initial.data.models).toHaveLength(1);
    expect(initial.data.models[0]).toMatchObject({ id: "tiny", name: "tiny", status: "stopped" });
    expect(Date.parse(initial.data.timestamp)).toBeGreaterThan(0);

    const from = c.messages.length;
    supervisor.set("tiny", "loading");
    const loading = await c.next((m) => m.type === "models_update", "models_update after status change", from);
    expect(loading.data.models[0].status).toBe("loading");

    // A new registration (models.changed) is pushed too.
    const from2 = c.messages.length;
    registerModel(s, "second");
    const changed = await c.next((m) => m.type === "models_update", "models_update after registration", from2);
    expect(changed.data.models.map((m: { id: string }) => m.id).sort()).toEqual(["second", "tiny"]);
  });

  test("models: a burst of status changes (a swap) is one update", async () => {
    server = await startTestServer({ modelsIntervalMs: 60_000, modelsDebounceMs: 30 }, {}, undefined, fakeSupervisorOverrides);
    const s = server.services;
    const supervisor = fakeSupervisorOf(s);
    registerModel(s, "a");
    registerModel(s, "b");
    const c = await connect();
    await c.request({ type: "subscribe", data: { type: "models" } });
    await c.next((m) => m.type === "models_update", "initial");
    const from = c.messages.length;
    await supervisor.start("a"); // loading then running, synchronously
    const update = await c.next((m) => m.type === "models_update", "update", from);
    expect(update.data.models.find((m: { id: string }) => m.id === "a").status).toBe("running");
    // A ping round trip later, still only that one update.
    await c.request({ type: "ping" });
    expect(c.messages.slice(from).filter((m) => m.type === "models_update")).toHaveLength(1);
  });
});

describe("plain protocol: logs", () => {
  test("subscribe sends the recent tail; later lines come in the next logs_update, without repeats", async () => {
    server = await startTestServer({ logsIntervalMs: 150, logsTail: 50 });
    const s = server.services;
    s.log.info("before subscribing");
    const c = await connect();
    await c.request({ type: "subscribe", data: { type: "logs" } });
    const tail = await c.next((m) => m.type === "logs_update", "tail");
    expect(tail.data.logs.map((l: { message: string }) => l.message)).toContain("before subscribing");
    expect(tail.data.logs.length).toBeLessThanOrEqual(50);

    const from = c.messages.length;
    s.log.info("after subscribing");
    const update = await c.next((m) => m.type === "logs_update", "periodic logs_update", from);
    const messages = update.data.logs.map((l: { message: string }) => l.message);
    expect(messages).toContain("after subscribing");
    expect(messages).not.toContain("before subscribing");
    expect(update.data.logs[0]).toMatchObject({ level: "info", source: "proxy" });
    expect(typeof update.data.logs[0].id).toBe("string");
  });

  test("while a model loads, lines go out batched within logsBatchMs; otherwise they wait for the interval", async () => {
    server = await startTestServer({ logsIntervalMs: 60_000, logsBatchMs: 80 }, {}, undefined, fakeSupervisorOverrides);
    const s = server.services;
    const supervisor = fakeSupervisorOf(s);
    registerModel(s, "tiny");
    const c = await connect();
    await c.request({ type: "subscribe", data: { type: "logs" } });
    await c.next((m) => m.type === "logs_update", "tail");

    // Idle: an info line is held for the 60 s interval...
    const from = c.messages.length;
    s.log.info("quiet line");
    // ...until an error line makes the batch urgent: both arrive together, in order.
    s.log.error("loud line");
    const batch = await c.next((m) => m.type === "logs_update", "urgent batch", from);
    expect(batch.data.logs.map((l: { message: string }) => l.message)).toEqual(["quiet line", "loud line"]);

    // Loading: every line is urgent, and lines logged together share one message.
    supervisor.set("tiny", "loading");
    const from2 = c.messages.length;
    s.logs.append("info", "llama-server:tiny", "load_tensors: one");
    s.logs.append("info", "llama-server:tiny", "load_tensors: two");
    s.logs.append("info", "llama-server:tiny", "load_tensors: three");
    const loading = await c.next((m) => m.type === "logs_update", "loading batch", from2);
    expect(loading.data.logs.map((l: { message: string }) => l.message)).toEqual([
      "load_tensors: one",
      "load_tensors: two",
      "load_tensors: three",
    ]);
    expect(c.messages.slice(from2).filter((m) => m.type === "logs_update")).toHaveLength(1);
  });
});

describe("plain protocol: bad input keeps the connection", () => {
  test("malformed JSON, unknown type, unknown subscription, missing data, oversized: an error each, then still served", async () => {
    server = await startTestServer({ maxMessageBytes: 1024 });
    const c = await connect();
    const cases: [unknown, RegExp][] = [
      ["{not json", /Malformed JSON/],
      [JSON.stringify({ type: "dance", data: {} }), /Unknown message type "dance"/],
      [JSON.stringify({ type: "subscribe", data: { type: "weather" } }), /Unknown subscription "weather"/],
      [JSON.stringify({ type: "subscribe" }), /Invalid subscription/],
      [JSON.stringify({ data: 1 }), /Invalid message/],
      ["[1,2,3]", /Invalid message/],
      [JSON.stringify({ type: "ping", pad: "x".repeat(2000) }), /Message too large/],
    ];
    for (const [raw, message] of cases) {
      const from = c.messages.length;
      c.send(raw as string);
      const err = await c.next((m) => m.type === "error", `error for ${String(raw).slice(0, 30)}`, from);
      expect(err.data.code).toBe("VALIDATION_ERROR");
      expect(err.data.message).toMatch(message);
    }
    // A bad request with a requestId still gets it echoed.
    const bad = await c.request({ type: "subscribe", data: { type: "nope" } }, "bad-1");
    expect(bad).toMatchObject({ type: "error", requestId: "bad-1" });
    // Still open and served.
    expect((await c.request({ type: "ping" })).type).toBe("pong");
    expect(c.closed).toBeUndefined();
    expect(server.services.hub.stats().connected_clients).toBe(1);
  });

  test("a frame beyond Bun's hard limit is refused by closing with 1009", async () => {
    server = await startTestServer({ maxMessageBytes: 1024, hardMaxMessageBytes: 4096 });
    const c = await connect();
    c.send("x".repeat(10_000));
    await waitFor(() => c.closed, "close");
    expect(c.closed!.code).toBe(1009);
  });

  test("a flood is rate limited (RATE_LIMITED, dropped) and does not starve another client", async () => {
    server = await startTestServer({ rateLimitPerSecond: 5, rateLimitBurst: 10 });
    const flooder = await connect();
    const other = await connect();
    for (let i = 0; i < 500; i++) flooder.send({ type: "ping", requestId: i });
    const limited = await flooder.next((m) => m.type === "error" && m.data.code === "RATE_LIMITED", "RATE_LIMITED");
    expect(limited.data.retryIn).toBeGreaterThan(0);
    expect(limited.data.message).toMatch(/5 per second/);
    // The other client is answered while the flood is being dropped.
    expect((await other.request({ type: "ping" }, "other")).type).toBe("pong");
    // Wait until the server has read the whole flood, then until the flooder is answered again
    // (the bucket refills): every reply to the flood arrived before that one.
    const hub = server.services.hub;
    await waitFor(() => hub.clients().find((c) => c.messagesIn >= 500), "the server to read the flood");
    let polls = 0;
    await waitFor(() => {
      if (flooder.messages.some((m) => String(m.requestId).startsWith("marker-"))) return true;
      if (polls++ % 20 === 0) flooder.send({ type: "ping", requestId: `marker-${polls}` });
      return false;
    }, "the flooder to be answered again");
    // At most the burst (plus refill during the flood) was answered; one notice per second.
    const pongs = flooder.of("pong").filter((m) => typeof m.requestId === "number").length;
    expect(pongs).toBeGreaterThanOrEqual(10);
    expect(pongs).toBeLessThan(30);
    expect(flooder.of("error").length).toBeLessThanOrEqual(3);
    const info = hub.clients().find((c) => c.dropped > 0)!;
    expect(info.dropped).toBeGreaterThan(450);
    expect(flooder.closed).toBeUndefined();
  });

  test("a client that keeps flooding after the notice is closed with a reason", async () => {
    server = await startTestServer({ rateLimitPerSecond: 5, rateLimitBurst: 10, floodCloseDrops: 100 });
    const flooder = await connect();
    const other = await connect();
    for (let i = 0; i < 500; i++) flooder.send({ type: "ping", requestId: i });
    await waitFor(() => flooder.closed, "the flooder to be closed");
    expect(flooder.closed!.code).toBe(1008);
    expect(flooder.closed!.reason).toBe("Rate limit exceeded: 101 messages dropped within 10 s");
    expect((await other.request({ type: "ping" })).type).toBe("pong");
  });
});

describe("plain protocol: access, statistics, lifecycle", () => {
  test("a plain GET without upgrade gets 426 with the envelope", async () => {
    server = await startTestServer();
    const res = await fetch(`${server.url}/llamaproxws`);
    expect(res.status).toBe(426);
    const body = (await res.json()) as { success: boolean; error: { code: string } };
    expect(body.success).toBe(false);
    expect(body.error.code).toBe("UPGRADE_REQUIRED");
  });

  test("with an API key the upgrade needs it (?key= or header)", async () => {
    server = await startTestServer({}, { apiKey: "sekret" });
    await expect(PlainClient.connect(server.wsUrl)).rejects.toThrow();
    const res = await fetch(`${server.url}/llamaproxws`, { headers: { upgrade: "websocket", connection: "upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } });
    expect(res.status).toBe(401);
    const byQuery = await connect(`${server.wsUrl}?key=sekret`);
    expect((await byQuery.request({ type: "ping" })).type).toBe("pong");
    const ws = new WebSocket(server.wsUrl, { headers: { Authorization: "Bearer sekret" } } as unknown as string[]);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    ws.close();
  });

  test("browsers from another origin are refused unless allowed; same-origin and origin-less clients pass", async () => {
    server = await startTestServer({ allowedOrigins: ["http://console.example"] });
    const headers = (origin?: string) => ({
      upgrade: "websocket",
      connection: "upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      ...(origin ? { origin } : {}),
    });
    const evil = await fetch(`${server.url}/llamaproxws`, { headers: headers("http://evil.example") });
    expect(evil.status).toBe(403);
    const evilPolling = await fetch(`${server.url}/llamaproxws/?EIO=4&transport=polling`, { headers: { origin: "http://evil.example" } });
    expect(evilPolling.status).toBe(403);
    expect(await evilPolling.json()).toMatchObject({ code: 4 });
    const own = new URL(server.url).host;
    expect((await fetch(`${server.url}/llamaproxws`, { headers: headers(`http://${own}`) })).status).toBe(101);
    expect((await fetch(`${server.url}/llamaproxws`, { headers: headers("http://console.example") })).status).toBe(101);
    // Bun's WebSocket sends no Origin: allowed.
    const c = await connect();
    expect((await c.request({ type: "ping" })).type).toBe("pong");
  });

  test("clients beyond maxClients are refused with 503 until one leaves", async () => {
    server = await startTestServer({ maxClients: 2 });
    const a = await connect();
    await connect();
    await expect(PlainClient.connect(server.wsUrl)).rejects.toThrow();
    const polling = await fetch(`${server.url}/llamaproxws/?EIO=4&transport=polling`);
    expect(polling.status).toBe(503);
    a.close();
    await waitFor(() => server!.services.hub.stats().connected_clients === 1, "a slot to free up");
    const c = await connect();
    expect((await c.request({ type: "ping" })).type).toBe("pong");
  });

  test("/api/status reports connected, subscribed and messages per second", async () => {
    server = await startTestServer({ metricsIntervalMs: 100 });
    const a = await connect();
    await connect();
    await a.request({ type: "subscribe", data: { type: "metrics" } });
    await waitFor(() => a.of("metrics_update").length >= 3, "some traffic");
    const res = await fetch(`${server.url}/api/status`);
    const body = (await res.json()) as { data: { websocket: { connected_clients: number; active_connections: number; messages_per_second: number } } };
    expect(body.data.websocket.connected_clients).toBe(2);
    expect(body.data.websocket.active_connections).toBe(1);
    expect(body.data.websocket.messages_per_second).toBeGreaterThan(0);
    a.close();
    await waitFor(() => server!.services.hub.stats().connected_clients === 1, "close to be counted");
  });

  test("server shutdown tells clients to reconnect; a new server on the same port accepts them again", async () => {
    server = await startTestServer();
    const port = server.services.server.port;
    const dir = server.dir;
    const c = await connect();
    await c.request({ type: "subscribe", data: { type: "models" } });
    await server.stop();
    await waitFor(() => c.closed, "close after shutdown");
    expect(c.closed).toEqual({ code: 1001, reason: "Server shutting down" });
    const notice = c.of("error").at(-1)!;
    expect(notice.data).toMatchObject({ code: "SERVICE_UNAVAILABLE", reconnect: true, retryIn: 1000 });

    const old = server;
    server = await startTestServer({}, { port }, dir);
    await old.cleanup().catch(() => undefined);
    const again = await connect();
    expect((await again.request({ type: "subscribe", data: { type: "models" } })).type).toBe("subscribed");
  });
});
