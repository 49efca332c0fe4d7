// `bun bench/activity.ts [requests]`: what the activity log and the live queue cost per proxied
// request. Alternates rounds of the tracker's per-request path (begin, lease, 16 chunks, finish)
// with the real ActivityLog as the sink against a no-op sink, and times the batched SQLite write
// (a real WAL database file, 500-row multi-row INSERTs) separately, since it runs off the path.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ActivityLog } from "../src/activity/log";
import { RequestTracker } from "../src/activity/tracker";
import { closeDatabase, openDatabase } from "../src/db/client";
import { EventBus } from "../src/events";

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = 5;
const dir = mkdtempSync(join(tmpdir(), "lap-bench-activity-"));
const db = openDatabase(join(dir, "bench.db"));
const bus = new EventBus();
// Timers never fire inside a synchronous round; the round flushes explicitly and is timed apart.
const log = new ActivityLog(db, () => ({ activityRetentionDays: 30, activityMaxRows: 10_000_000 }), undefined, bus, { flushMs: 3_600_000, maxBatch: 1e9, maxPending: 1e9 });

function round(sink: (r: unknown) => void): number {
  const tracker = new RequestTracker(bus, sink as never);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const h = tracker.begin({ requestId: null, model: i % 2 ? "a" : "b", route: "/v1/chat/completions", streaming: true, client: "127.0.0.1", keyName: "team", sessionId: "s", rewritten: [], modelRunning: true });
    h.leased();
    for (let c = 0; c < 16; c++) h.chunk();
    h.finish({ status: 200, ttftMs: 12.3, promptTokens: 20, cachedTokens: 10, completionTokens: 16, generationMs: 160, promptPerSecond: 1000, predictedPerSecond: 100 });
  }
  return ((performance.now() - t0) * 1000) / N;
}

const withLog: number[] = [];
const without: number[] = [];
const flushPerRow: number[] = [];
round(() => {}); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  without.push(round(() => {}));
  const pending: unknown[] = [];
  withLog.push(round((row) => (pending.push(row), log.add(row as never))));
  // The write: 500-row batches, as the timer would do them.
  const rows = (log as unknown as { pending: unknown[] }).pending.splice(0);
  const t0 = performance.now();
  for (let i = 0; i < rows.length; i += 500) {
    (log as unknown as { pending: unknown[] }).pending = rows.slice(i, i + 500);
    log.flush();
  }
  flushPerRow.push(((performance.now() - t0) * 1000) / rows.length);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const m0 = median(without);
const m1 = median(withLog);
console.log(`activity log + live queue, ${N} requests x ${ROUNDS} rounds (medians)`);
console.log(`| path | per request |`);
console.log(`|---|---|`);
console.log(`| tracker, no-op sink | ${m0.toFixed(2)} us |`);
console.log(`| tracker + ActivityLog.add (on the request's path) | ${m1.toFixed(2)} us (+${(m1 - m0).toFixed(2)} us) |`);
console.log(`| batched SQLite write, off the path | ${median(flushPerRow).toFixed(2)} us per row |`);
console.log(`rows stored: ${(db.$client.query("SELECT count(*) AS n FROM activity").get() as { n: number }).n}`);
log.close();
closeDatabase(db);
rmSync(dir, { recursive: true, force: true });
