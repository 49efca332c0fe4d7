import { afterEach, describe, expect, spyOn, test } from "bun:test";
import io from "socket.io-client";
import type { Socket } from "socket.io-client";
import { fakeSupervisorOf, fakeSupervisorOverrides, registerModel, startTestServer, waitFor, type TestServer } from "./realtime-helpers";

// socket.io-client 4.x against /llamaproxws on a real server: both transports, the upgrade from
// polling, the reference's snippets, bad input, auth and reconnecting after a restart.

let server: TestServer | undefined;
const sockets: Socket[] = [];
const spies: { mockRestore(): void }[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.disconnect();
  for (const s of spies.splice(0)) s.mockRestore();
  await server?.cleanup();
  server = undefined;
});

function track(socket: Socket): Socket {
  sockets.push(socket);
  return socket;
}

/** Resolves with the arguments of the next `event` on the socket. */
function once<T = unknown>(socket: Socket, event: string, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, (data: T) => {
      clearTimeout(timer);
      resolve(data);
    });
  });
}

const logSpy = () => {
  const spy = spyOn(console, "log").mockImplementation(() => {});
  spies.push(spy);
  return spy;
};
const errorSpy = () => {
  const spy = spyOn(console, "error").mockImplementation(() => {});
  spies.push(spy);
  return spy;
};
const logged = (spy: ReturnType<typeof logSpy>, first: string) => spy.mock.calls.filter((c) => c[0] === first);

describe("the reference's snippets, unchanged but for the URL", () => {
  test("WebSocket Client Example (transports: ['websocket', 'polling'])", async () => {
    server = await startTestServer({ metricsIntervalMs: 100 });
    const url = server.url;
    const log = logSpy();
    errorSpy();

    // ---- from API_REFERENCE.md "WebSocket Client Example" ----
    const socket = io(url, {
      path: '/llamaproxws',
      transports: ['websocket', 'polling']
    });

    // Subscribe to metrics
    socket.on('connect', () => {
      socket.emit('subscribe', { type: 'metrics' });
    });

    // Listen for metrics updates
    socket.on('metrics_update', (data) => {
      console.log('Metrics update:', data);
      // Update UI with new metrics
    });

    // Handle errors
    socket.on('error', (error) => {
      console.error('WebSocket error:', error);
    });
    // ---- end (its final socket.disconnect() runs in afterEach) ----
    track(socket);

    await waitFor(() => logged(log, "Metrics update:").length >= 2, "two metrics updates");
    const data = logged(log, "Metrics update:")[0]![1];
    expect(typeof data.cpu.usage).toBe("number");
    expect(typeof data.memory.usagePercent).toBe("number");
    expect(socket.io.engine.transport.name).toBe("websocket");
  });

  test("Connection (default options: polling, then upgrade) with the subscription and server-event snippets", async () => {
    server = await startTestServer({ metricsIntervalMs: 100, logsIntervalMs: 100 });
    const s = server.services;
    registerModel(s, "tiny-model");
    s.log.warn("something to read");
    const url = server.url;
    const log = logSpy();
    const error = errorSpy();

    // ---- from API_REFERENCE.md "WebSocket API" ----
    const socket = io(url, {
      path: '/llamaproxws'
    });

    // Connected successfully
    socket.on('connect', () => {
      console.log('Connected to server');
    });

    // Disconnected
    socket.on('disconnect', (reason) => {
      console.log('Disconnected:', reason);
    });

    // Connection error
    socket.on('connect_error', (error) => {
      console.error('Connection error:', error);
    });

    // Error
    socket.on('error', (error) => {
      console.error('Socket error:', error);
    });

    // Subscribe to metrics updates
    socket.emit('subscribe', { type: 'metrics' });

    // Subscribe to model updates
    socket.emit('subscribe', { type: 'models' });

    // Subscribe to logs
    socket.emit('subscribe', { type: 'logs' });

    // Received every 10 seconds
    socket.on('metrics_update', (data) => {
      console.log('CPU:', data.cpu.usage);
      console.log('Memory:', data.memory.usagePercent);
      console.log('GPU:', data.gpu?.[0]?.utilization);
    });

    // Received every 30 seconds
    socket.on('models_update', (data) => {
      console.log('Active models:', data.models.length);
      // @ts-expect-error the reference's snippet leaves `model` implicitly any (strict mode)
      data.models.forEach(model => {
        console.log(`Model ${model.name} is ${model.status}`);
      });
    });

    // Received every 15 seconds
    socket.on('logs_update', (data) => {
      // @ts-expect-error the reference's snippet leaves `log` implicitly any (strict mode)
      data.logs.forEach(log => {
        console.log(`[${log.level}] ${log.message}`);
      });
    });
    // ---- end ----
    track(socket);

    expect(socket.io.engine.transport.name).toBe("polling");
    await waitFor(() => logged(log, "Connected to server").length === 1, "connect");
    await waitFor(() => socket.io.engine.transport.name === "websocket", "upgrade to websocket");
    const cpuBefore = logged(log, "CPU:").length;
    await waitFor(() => logged(log, "CPU:").length >= cpuBefore + 2, "metrics after the upgrade");
    expect(typeof logged(log, "CPU:")[0]![1]).toBe("number");
    expect(typeof logged(log, "Memory:")[0]![1]).toBe("number");
    expect(logged(log, "Active models:")[0]![1]).toBe(1);
    expect(logged(log, "Model tiny-model is stopped")).toHaveLength(1);
    expect(log.mock.calls.some((c) => c[0] === "[warn] something to read")).toBe(true);
    expect(error.mock.calls).toHaveLength(0);
    expect(s.hub.clients()[0]).toMatchObject({ protocol: "socketio", transport: "websocket" });
  });

  test("Error Message snippet: an unknown subscription comes back as an 'error' event", async () => {
    server = await startTestServer();
    const error = errorSpy();
    const log = logSpy();
    const socket = track(io(server.url, { path: "/llamaproxws", transports: ["websocket", "polling"] }));
    // ---- from API_REFERENCE.md "Error Message" ----
    socket.on('error', (data) => {
      console.error('Error:', data.message);
      console.error('Code:', data.code);
      if (data.reconnect) {
        console.log(`Will retry in ${data.retryIn}ms`);
      }
    });
    // ---- end ----
    socket.emit("subscribe", { type: "weather" });
    await waitFor(() => error.mock.calls.length >= 2, "error event");
    expect(error.mock.calls[0]).toEqual(["Error:", expect.stringContaining('Unknown subscription "weather"')]);
    expect(error.mock.calls[1]).toEqual(["Code:", "VALIDATION_ERROR"]);
    // Shutdown notices carry reconnect/retryIn.
    await server.stop();
    await waitFor(() => log.mock.calls.some((c) => c[0] === "Will retry in 1000ms"), "shutdown notice");
  });
});

describe("both transports", () => {
  for (const transports of [["websocket"], ["polling"]]) {
    test(`${transports[0]}: models_update on a status change, logs_update, acks, unsubscribe`, async () => {
      server = await startTestServer({ logsIntervalMs: 100, modelsIntervalMs: 60_000 }, {}, undefined, fakeSupervisorOverrides);
      const s = server.services;
      const supervisor = fakeSupervisorOf(s);
      registerModel(s, "tiny");
      const socket = track(io(server.url, { path: "/llamaproxws", transports, forceNew: true }));
      await once(socket, "connect");
      expect(socket.io.engine.transport.name).toBe(transports[0]!);

      const initial = once<{ models: { id: string; status: string }[] }>(socket, "models_update");
      const ack = await socket.emitWithAck("subscribe", { type: "models" });
      expect(ack).toEqual({ ok: true, type: "models", subscriptions: ["models"] });
      expect((await initial).models[0]).toMatchObject({ id: "tiny", status: "stopped" });

      const changed = once<{ models: { status: string }[] }>(socket, "models_update");
      supervisor.set("tiny", "running");
      expect((await changed).models[0]!.status).toBe("running");

      const tail = once<{ logs: unknown[] }>(socket, "logs_update");
      socket.emit("subscribe", { type: "logs" });
      await tail;
      const next = once<{ logs: { message: string }[] }>(socket, "logs_update");
      s.log.info(`hello over ${transports[0]}`);
      expect((await next).logs.map((l) => l.message)).toContain(`hello over ${transports[0]}`);

      expect(await socket.emitWithAck("unsubscribe", { type: "logs" })).toEqual({ ok: true, type: "logs", subscriptions: ["models"] });
      const pong = await socket.emitWithAck("ping");
      expect(pong.ok).toBe(true);
      expect(s.hub.stats()).toMatchObject({ connected_clients: 1, active_connections: 1 });
    });
  }

  test("bad input over Socket.IO: unknown event and bad subscription get 'error' events, the socket stays", async () => {
    server = await startTestServer();
    const socket = track(io(server.url, { path: "/llamaproxws", transports: ["polling"] }));
    await once(socket, "connect");
    const errors: { code: string; message: string }[] = [];
    socket.on("error", (e) => errors.push(e));
    socket.emit("dance", {});
    socket.emit("subscribe", "metrics");
    socket.emit("subscribe", { type: "weather" });
    await waitFor(() => errors.length === 3, "three errors");
    expect(errors.map((e) => e.code)).toEqual(["VALIDATION_ERROR", "VALIDATION_ERROR", "VALIDATION_ERROR"]);
    expect(errors[0]!.message).toMatch(/Unknown event "dance"/);
    expect(errors[1]!.message).toMatch(/Invalid subscription/);
    expect(errors[2]!.message).toMatch(/Unknown subscription "weather"/);
    const nack = await socket.emitWithAck("subscribe", { type: "weather" });
    expect(nack.ok).toBe(false);
    expect(socket.connected).toBe(true);
    expect((await socket.emitWithAck("ping")).ok).toBe(true);
  });

  test("heartbeat: a socket.io client stays connected across many ping intervals", async () => {
    server = await startTestServer({ pingIntervalMs: 50, pingTimeoutMs: 200 });
    const socket = track(io(server.url, { path: "/llamaproxws", forceNew: true }));
    await once(socket, "connect");
    let pings = 0;
    socket.io.engine.on("ping", () => pings++);
    let disconnected = false;
    socket.on("disconnect", () => (disconnected = true));
    await waitFor(() => pings >= 8, "eight pings");
    expect(disconnected).toBe(false);
    expect(socket.connected).toBe(true);
  });

  test("with an API key: refused without it, accepted with query {key}", async () => {
    server = await startTestServer({}, { apiKey: "sekret" });
    const refused = track(io(server.url, { path: "/llamaproxws", reconnection: false, forceNew: true }));
    const err = await once<Error>(refused, "connect_error");
    expect(err.message).toMatch(/poll error|websocket error|xhr/i);
    expect(refused.connected).toBe(false);
    for (const transports of [["websocket"], ["polling"]]) {
      const ok = track(io(server.url, { path: "/llamaproxws", query: { key: "sekret" }, transports, forceNew: true }));
      await once(ok, "connect");
      expect((await ok.emitWithAck("ping")).ok).toBe(true);
    }
  });
});

describe("reconnect after a server restart on the same port", () => {
  for (const transports of [undefined, ["websocket"], ["polling"]]) {
    test(`${transports ? transports[0] : "default options"}`, async () => {
      server = await startTestServer({ metricsIntervalMs: 100 });
      const { port } = server.services.server;
      const dir = server.dir;
      const socket = track(io(server.url, { path: "/llamaproxws", forceNew: true, reconnectionDelay: 50, reconnectionDelayMax: 200, ...(transports ? { transports } : {}) }));
      let connects = 0;
      socket.on("connect", () => {
        connects++;
        socket.emit("subscribe", { type: "metrics" });
      });
      let metrics = 0;
      socket.on("metrics_update", () => metrics++);
      const reasons: string[] = [];
      socket.on("disconnect", (reason) => reasons.push(reason));
      await waitFor(() => metrics >= 1, "metrics before the restart");

      await server.stop();
      await waitFor(() => reasons.length === 1, "disconnect");
      // A WebSocket (or a parked long-poll) sees the close; a poller caught between two requests
      // finds the port shut ("transport error"). Both make socket.io-client reconnect.
      if (transports?.[0] === "websocket") expect(reasons[0]).toBe("transport close");
      else expect(["transport close", "transport error"]).toContain(reasons[0]!);
      const old = server;
      server = await startTestServer({ metricsIntervalMs: 100 }, { port }, dir);
      await old.cleanup().catch(() => undefined);

      const before = metrics;
      await waitFor(() => connects === 2, "reconnect", 10_000);
      await waitFor(() => metrics >= before + 2, "metrics after the restart");
      expect(server.services.hub.stats().active_connections).toBe(1);
    }, 20_000);
  }
});
