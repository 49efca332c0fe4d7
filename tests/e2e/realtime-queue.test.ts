import { afterAll, beforeAll, expect, test } from "bun:test";
import io from "socket.io-client";
import type { ActivityEntry } from "../../src/activity/log";
import type { LiveRequest } from "../../src/activity/tracker";
import { hashKey } from "../../src/keys/keys";
import type { RunningServer } from "../../src/server";
import { PlainClient, waitFor, type WsMessage } from "./realtime-helpers";
import { startProxyWithFakeLlama } from "../helpers/services";

// The `requests` and `activity` topics of /llamaproxws end to end: the real proxy on port 0, the
// real supervisor running the fake llama-server (a real process), a real WebSocket and
// socket.io-client. The proxy has an admin key and a named inference key, like a team set-up.
const ADMIN = "admin-key-0123456789";
const TEAMMATE = "lap-teammate-key-0123456789";
const INTERVAL_MS = 200;
/** Waits for pushes: generous, the full suite loads the machine (a model load is among them). */
const WAIT = 15_000;
let srv: RunningServer;
let wsUrl: string;

let proxy: Awaited<ReturnType<typeof startProxyWithFakeLlama>>;

beforeAll(async () => {
  proxy = await startProxyWithFakeLlama(
    "rt-queue",
    { apiKey: ADMIN, activity: { flushMs: 20 }, realtime: { requestsIntervalMs: INTERVAL_MS, modelsDebounceMs: 10 } },
    { maxConcurrentRequests: 1 },
  );
  srv = proxy.srv;
  srv.services.config.setKeys([{ name: "teammate", hash: hashKey(TEAMMATE), scope: "inference" }]);
  proxy.fakeModel("slow", { extraArgs: ["--fake-token-delay-ms", "30"] });
  wsUrl = `${srv.url.replace(/^http/, "ws")}/llamaproxws`;
});
afterAll(async () => {
  await proxy?.stop();
});

const chat = (requestId: string, maxTokens: number, key = ADMIN) =>
  fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}`, "x-request-id": requestId },
    body: JSON.stringify({ model: "slow", stream: true, max_tokens: maxTokens, messages: [{ role: "user", content: "go" }] }),
  }).then((r) => r.text());

type QueueData = { requests: LiveRequest[]; total: number; queued: number; loading: number; running: number; timestamp: string };
const queueOf = (m: WsMessage) => m.data as QueueData;

test("requests: the queue on subscribe, then pushes while a request waits, loads and streams, coalesced; activity: the finished row", async () => {
  const client = await PlainClient.connect(`${wsUrl}?key=${ADMIN}`);
  try {
    const sub = await client.request({ type: "subscribe", data: { type: "requests" } });
    expect(sub.data).toEqual({ type: "requests", subscriptions: ["requests"] });
    const initial = await client.next((m) => m.type === "requests_update", "the queue at once");
    expect(queueOf(initial)).toMatchObject({ requests: [], total: 0, queued: 0, loading: 0, running: 0 });
    await client.request({ type: "subscribe", data: { type: "activity" } });
    const activityState = await client.next((m) => m.type === "activity_update", "the activity tail at once");
    expect(activityState.data.entries).toEqual([]);

    // Two requests: the first loads the model and streams, the second queues behind it
    // (maxConcurrentRequests 1).
    const from = client.messages.length;
    // Long enough (40 x 30 ms) that the second request still finds it running on a loaded machine.
    const first = chat("rt-first", 40);
    const loading = await client.next((m) => m.type === "requests_update" && queueOf(m).requests.some((r) => r.id === "rt-first"), "a push with the first request", from, WAIT);
    expect(queueOf(loading).requests.find((r) => r.id === "rt-first")).toMatchObject({ model: "slow", route: "/v1/chat/completions", key: "admin" });
    expect(["loading", "queued"]).toContain(queueOf(loading).requests.find((r) => r.id === "rt-first")!.state);
    // Tokens of the running stream arrive without bus events: they are pushed too.
    await client.next((m) => m.type === "requests_update" && (queueOf(m).requests.find((r) => r.id === "rt-first")?.tokens ?? 0) > 0, "a push with tokens so far", from, WAIT);
    const second = chat("rt-second", 2);
    const both = await client.next(
      (m) => m.type === "requests_update" && queueOf(m).requests.some((r) => r.id === "rt-second" && r.state === "queued" && r.position === 1),
      "a push with the second request queued",
      from,
      WAIT,
    );
    expect(queueOf(both)).toMatchObject({ total: 2, queued: 1, running: 1 });

    await Promise.all([first, second]);
    const empty = await client.next((m) => m.type === "requests_update" && queueOf(m).total === 0, "the empty queue after both ended", from, WAIT);
    expect(queueOf(empty).requests).toEqual([]);

    // Every push came at most once per interval, and each differs from the one before.
    const pushes = client.messages.slice(from).filter((m) => m.type === "requests_update");
    expect(pushes.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < pushes.length; i++) {
      const gap = Date.parse(queueOf(pushes[i]!).timestamp) - Date.parse(queueOf(pushes[i - 1]!).timestamp);
      expect(gap).toBeGreaterThanOrEqual(INTERVAL_MS - 5);
      const shape = (q: QueueData) => JSON.stringify(q.requests.map((r) => [r.id, r.state, r.position, r.tokens]));
      expect(shape(queueOf(pushes[i]!))).not.toBe(shape(queueOf(pushes[i - 1]!)));
    }

    // The finished rows went out on `activity`, newest first within a batch.
    const rows = await waitFor(() => {
      const seen = client.messages.slice(from).filter((m) => m.type === "activity_update").flatMap((m) => m.data.entries as ActivityEntry[]);
      return seen.some((e) => e.requestId === "rt-first") && seen.some((e) => e.requestId === "rt-second") ? seen : null;
    }, "both rows pushed", WAIT);
    expect(rows.find((e) => e.requestId === "rt-first")).toMatchObject({ model: "slow", status: 200, completionTokens: 40, keyName: "admin", streaming: true });

    // A new activity subscriber gets the recent rows at once.
    const late = await PlainClient.connect(`${wsUrl}?key=${ADMIN}`);
    try {
      await late.request({ type: "subscribe", data: { type: "activity" } });
      const tail = await late.next((m) => m.type === "activity_update", "the tail");
      expect((tail.data.entries as ActivityEntry[]).slice(0, 2).map((e) => e.requestId)).toEqual(["rt-second", "rt-first"]);
    } finally {
      late.close();
    }
  } finally {
    client.close();
  }
}, 30_000);

for (const transport of ["websocket", "polling"] as const) test(`socket.io-client (${transport}): subscribe to requests and activity, the same pushes`, async () => {
  const socket = io(srv.url, { path: "/llamaproxws", transports: [transport], query: { key: ADMIN }, reconnection: false });
  const queue: QueueData[] = [];
  const activity: ActivityEntry[][] = [];
  socket.on("requests_update", (d: QueueData) => queue.push(d));
  socket.on("activity_update", (d: { entries: ActivityEntry[] }) => activity.push(d.entries));
  try {
    await waitFor(() => socket.connected, "socket.io connected");
    const acks = await Promise.all(["requests", "activity"].map((type) => new Promise((ok) => socket.emit("subscribe", { type }, ok))));
    expect(acks).toHaveLength(2);
    await waitFor(() => queue.length >= 1 && activity.length >= 1, "both states");
    // Longer than one push interval (~20 x 30 ms): a request that ends within the interval may
    // never be in a queue push (the push shows the queue as it is then); its activity row comes.
    const id = `rt-sio-${transport}`;
    const done = chat(id, 20);
    await waitFor(() => queue.some((q) => q.requests.some((r) => r.id === id)), "the request pushed");
    await done;
    await waitFor(() => activity.some((batch) => batch.some((e) => e.requestId === id && e.status === 200)), "its activity row pushed");
  } finally {
    socket.disconnect();
  }
}, 15_000);

test("same auth as /api/requests: an inference key cannot open the socket, so it never sees anyone's queue", async () => {
  // /api/requests is admin-only; the socket is too (its ?key= and headers accept admin keys only).
  expect((await fetch(`${srv.url}/api/requests`, { headers: { authorization: `Bearer ${TEAMMATE}` } })).status).toBe(401);
  const refused = await fetch(`${srv.url}/llamaproxws`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13", authorization: `Bearer ${TEAMMATE}` } });
  expect(refused.status).toBe(401);
  await expect(PlainClient.connect(`${wsUrl}?key=${TEAMMATE}`)).rejects.toThrow();
  const sio = io(srv.url, { path: "/llamaproxws", transports: ["polling"], query: { key: TEAMMATE }, reconnection: false });
  try {
    const error = await new Promise<Error>((ok) => sio.on("connect_error", ok));
    expect(error.message).toBeTruthy();
    expect(sio.connected).toBe(false);
  } finally {
    sio.disconnect();
  }
  // The inference key still reaches /v1; an admin subscriber sees its request by key name.
  const admin = await PlainClient.connect(`${wsUrl}?key=${ADMIN}`);
  try {
    await admin.request({ type: "subscribe", data: { type: "activity" } });
    const from = admin.messages.length;
    expect(await chat("rt-teammate", 2, TEAMMATE)).toContain("[DONE]");
    const pushed = await admin.next((m) => m.type === "activity_update" && (m.data.entries as ActivityEntry[]).some((e) => e.requestId === "rt-teammate"), "the teammate's row", from);
    expect((pushed.data.entries as ActivityEntry[]).find((e) => e.requestId === "rt-teammate")!.keyName).toBe("teammate");
  } finally {
    admin.close();
  }
}, 15_000);
