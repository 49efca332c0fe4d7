import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { ActivityLog, type ActivityEntry } from "../../src/activity/log";
import { acceptRequestId, activityRow, sessionHeaderNames, sessionIdOf, type TrackedFacts } from "../../src/activity/record";
import { CancelledError, RequestTracker } from "../../src/activity/tracker";
import { closeDatabase, openDatabase, type Db } from "../../src/db/client";
import type { NewActivityRow } from "../../src/db/schema";
import { EventBus } from "../../src/events";

describe("request ids and session ids", () => {
  const ids: [string | undefined, string | null][] = [
    ["abc-123", "abc-123"],
    ["  7f3e:1  ", "7f3e:1"],
    ["", null],
    [undefined, null],
    ["has space", null],
    ["x".repeat(129), null],
    ["<script>", null],
    ["a\r\nSet-Cookie: x", null],
  ];
  for (const [input, want] of ids) test(`acceptRequestId(${JSON.stringify(input)})`, () => expect(acceptRequestId(input)).toBe(want));

  test("session id: the first non-empty configured header, case-insensitive", () => {
    const names = sessionHeaderNames(" X-Session-ID , X-Litellm-Session-Id,");
    expect(names).toEqual(["X-Session-ID", "X-Litellm-Session-Id"]);
    expect(sessionIdOf(new Headers({ "x-litellm-session-id": "lite" }), names)).toBe("lite");
    expect(sessionIdOf(new Headers({ "x-session-id": "  ", "x-litellm-session-id": "lite" }), names)).toBe("lite");
    expect(sessionIdOf(new Headers({ "X-SESSION-ID": "s1", "x-litellm-session-id": "lite" }), names)).toBe("s1");
    expect(sessionIdOf(new Headers({ "x-session-id": "s1" }), [])).toBeNull();
  });
});

describe("activityRow", () => {
  const facts: TrackedFacts = {
    requestId: "r1", ts: 1_700_000_000_000, model: "m", route: "/v1/chat/completions", client: "127.0.0.1",
    keyName: null, sessionId: null, streaming: true, waitedForLoad: false, waitMs: 12.4, durationMs: 250.6, rewritten: [],
  };
  test("a streamed completion: tokens, speeds from llama-server's timings, queue time", () => {
    const row = activityRow(facts, { status: 200, ttftMs: 30.2, promptTokens: 10, cachedTokens: 4, completionTokens: 20, generationMs: 200, promptPerSecond: 1234.56, predictedPerSecond: 99.94 });
    expect(row).toMatchObject({ status: 200, promptTokens: 10, cachedTokens: 4, completionTokens: 20, queuedMs: 12, loadingMs: 0, ttftMs: 30, promptTps: 1234.6, genTps: 99.9, durationMs: 251, error: null, rewritten: null });
  });
  test("without timings the generation speed comes from tokens and generation time", () => {
    expect(activityRow(facts, { status: 200, completionTokens: 50, generationMs: 500 }).genTps).toBe(100);
  });
  test("a request that waited for a load and never got a slot: all of its time was loading", () => {
    const row = activityRow({ ...facts, waitedForLoad: true, waitMs: undefined, rewritten: ["temperature", "top_k"] }, { status: 503, error: true, message: "The model could not be started" });
    expect(row).toMatchObject({ queuedMs: 0, loadingMs: 251, ttftMs: null, genTps: null, error: "The model could not be started", rewritten: "temperature,top_k" });
  });
  test("an error without a message still says what happened", () => {
    expect(activityRow(facts, { status: 502 }).error).toBe("HTTP 502");
  });
});

describe("RequestTracker", () => {
  let bus: EventBus;
  let rows: NewActivityRow[];
  let tracker: RequestTracker;
  const init = (model: string, running = true, requestId: string | null = null) => ({
    requestId, model, route: "/v1/chat/completions", streaming: false, client: null, keyName: null, sessionId: null, rewritten: [], modelRunning: running,
  });
  beforeEach(() => {
    bus = new EventBus();
    rows = [];
    tracker = new RequestTracker(bus, (r) => rows.push(r));
  });

  test("positions per model in arrival order; running requests have none", () => {
    const a = tracker.begin(init("m1"));
    tracker.begin(init("m1"));
    tracker.begin(init("m2", false));
    tracker.begin(init("m1"));
    a.leased();
    const list = tracker.list();
    expect(list.map((r) => [r.model, r.state, r.position])).toEqual([["m1", "running", null], ["m1", "queued", 1], ["m2", "loading", 1], ["m1", "queued", 2]]);
    expect(tracker.list({ model: "m2" })).toHaveLength(1);
  });

  test("chunks count as tokens so far; finish records one row and leaves the queue", () => {
    const h = tracker.begin(init("m1"));
    h.leased();
    h.chunk();
    h.chunk();
    expect(tracker.list()[0]!.tokens).toBe(2);
    h.finish({ status: 200, completionTokens: 2 });
    h.finish({ status: 500 }); // idempotent
    expect(tracker.size).toBe(0);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.status).toBe(200);
  });

  test("an incoming id is honoured unless a live request has it already", () => {
    expect(tracker.begin(init("m1", true, "mine")).id).toBe("mine");
    const second = tracker.begin(init("m1", true, "mine"));
    expect(second.id).not.toBe("mine");
    expect(second.id).toMatch(/^req_/);
  });

  test("cancel aborts the request's signal with a CancelledError; unknown ids answer false", () => {
    const events: string[] = [];
    bus.on("requests.changed", (e) => events.push(e.reason));
    const h = tracker.begin(init("m1"));
    expect(tracker.cancel("nope")).toBe(false);
    expect(tracker.cancel(h.id)).toBe(true);
    expect(h.signal.aborted).toBe(true);
    expect(h.signal.reason).toBeInstanceOf(CancelledError);
    h.finish({ status: 499, error: false, message: (h.signal.reason as Error).message });
    expect(tracker.cancel(h.id)).toBe(false);
    expect(events).toEqual(["begin", "cancel", "end"]);
  });
});

describe("ActivityLog", () => {
  let db: Db;
  let log: ActivityLog;
  let retention = { activityRetentionDays: 30, activityMaxRows: 1000 };
  const row = (i: number, over: Partial<NewActivityRow> = {}): NewActivityRow => ({
    requestId: `r${i}`, ts: Date.now() - 1000 + i, model: i % 2 ? "odd" : "even", route: "/v1/chat/completions", status: 200,
    keyName: i % 3 === 0 ? "team" : null, durationMs: 10 + i, promptTokens: 1, completionTokens: 2, genTps: 50, ...over,
  });
  beforeEach(() => {
    db = openDatabase(":memory:");
    retention = { activityRetentionDays: 30, activityMaxRows: 1000 };
    log = new ActivityLog(db, () => retention, undefined, undefined, { flushMs: 10_000, maxBatch: 5 });
  });
  afterEach(() => {
    log.close();
    closeDatabase(db);
  });

  const stored = () => db.$client.query("SELECT count(*) AS n FROM activity").get() as { n: number };

  test("rows wait in memory and are written in batches (at maxBatch), off the caller's stack", async () => {
    const bus = new EventBus();
    const batched = new ActivityLog(db, () => retention, undefined, bus, { flushMs: 10_000, maxBatch: 5 });
    const recorded = new Promise<ActivityEntry[]>((resolve) => bus.on("activity.recorded", (e) => resolve(e.entries)));
    for (let i = 0; i < 4; i++) batched.add(row(i));
    expect(stored().n).toBe(0);
    batched.add(row(4)); // the fifth schedules an immediate write ...
    expect(stored().n).toBe(0); // ... which does not happen inside add()
    const entries = await recorded;
    expect(entries).toHaveLength(5);
    expect(stored().n).toBe(5);
    // The announced rows carry the seq SQLite gave them.
    expect(entries.map((e) => [e.seq, e.requestId])).toEqual(batched.query({}, 10).entries.reverse().map((e) => [e.seq, e.requestId]));
    batched.close();
  });

  test("pages newest first with a cursor; filters by model, key, status and time", () => {
    for (let i = 0; i < 12; i++) log.add(row(i, i === 7 ? { status: 502, error: "boom" } : {}));
    const first = log.query({}, 5);
    expect(first.entries.map((e) => e.requestId)).toEqual(["r11", "r10", "r9", "r8", "r7"]);
    const second = log.query({}, 5, Number(first.nextCursor));
    expect(second.entries.map((e) => e.requestId)).toEqual(["r6", "r5", "r4", "r3", "r2"]);
    const last = log.query({}, 5, Number(second.nextCursor));
    expect(last.entries.map((e) => e.requestId)).toEqual(["r1", "r0"]);
    expect(last.nextCursor).toBeNull();

    expect(log.query({ model: "odd" }, 50).entries).toHaveLength(6);
    expect(log.query({ key: "team" }, 50).entries.map((e) => e.requestId)).toEqual(["r9", "r6", "r3", "r0"]);
    expect(log.query({ status: "error" }, 50).entries.map((e) => e.requestId)).toEqual(["r7"]);
    expect(log.query({ status: "5xx" }, 50).entries.map((e) => e.requestId)).toEqual(["r7"]);
    expect(log.query({ status: 200 }, 50).entries).toHaveLength(11);
    const t5 = log.query({}, 50).entries.find((e) => e.requestId === "r5")!;
    expect(log.query({ since: Date.parse(t5.time) }, 50).entries.at(-1)!.requestId).toBe("r5");
    expect(log.query({ until: Date.parse(t5.time) }, 50).entries[0]!.requestId).toBe("r5");
  });

  test("retention: rows past the age and beyond the row count are deleted", () => {
    retention = { activityRetentionDays: 1, activityMaxRows: 3 };
    log.add(row(0, { ts: Date.now() - 2 * 86_400_000 }));
    for (let i = 1; i <= 5; i++) log.add(row(i));
    log.flush();
    expect(log.prune()).toBe(3); // one too old, then two beyond the newest three
    expect(log.query({}, 50).entries.map((e) => e.requestId)).toEqual(["r5", "r4", "r3"]);
  });

  test("summary: totals per model and per key", () => {
    for (let i = 0; i < 6; i++) log.add(row(i));
    const sum = log.summary(0);
    expect(sum.total).toMatchObject({ requests: 6, errors: 0, promptTokens: 6, completionTokens: 12, avgGenTps: 50 });
    expect(sum.models.find((m) => m.name === "even")).toMatchObject({ requests: 3, completionTokens: 6 });
    expect(sum.models.find((m) => m.name === "odd")).toMatchObject({ requests: 3, avgDurationMs: 13 });
    expect(sum.keys.find((k) => k.name === "team")).toMatchObject({ requests: 2, completionTokens: 4 });
    expect(sum.keys.find((k) => k.name === null)).toMatchObject({ requests: 4 });
  });

  test("close writes what is pending; later rows are ignored", () => {
    log.add(row(1));
    log.close();
    expect(stored().n).toBe(1);
    log.add(row(2));
    expect(log.flush()).toEqual([]);
  });
});
