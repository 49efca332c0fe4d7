import type { Server } from "bun";
import type { ActivityEntry } from "../activity/log";
import { queueFingerprint } from "../activity/tracker";
import type { LogEntry } from "../logs/types";
import type { TopicMembers } from "./commands";
import type { BroadcastFrames } from "./connection";
import { encodePlain, plainTopic } from "./plain";
import { encodeSocketIoEvent, socketIoTopic } from "./socketio";
import { UPDATE_EVENT, type RealtimeOptions, type RealtimeSources, type SocketHandler, type Topic } from "./types";

/** A failed model keeps logs urgent this long after its status turned to "error". */
const FAILURE_URGENCY_MS = 30_000;

/**
 * When updates go out: the bus listeners (a sample, a status change, a log line) and the periodic
 * timers, and the fan-out of one update to every subscriber of its topic. Owns the timers and the
 * log lines waiting for the next logs_update; the hub owns the connections.
 */
export class Broadcaster {
  private server?: Server<SocketHandler>;
  private sources?: RealtimeSources;
  private timers: ReturnType<typeof setInterval>[] = [];
  private unlisten: (() => void)[] = [];
  /** When metrics_update last went out (sample-driven or timer-driven). */
  private lastMetricsPublish = 0;
  private pendingLogs: LogEntry[] = [];
  private logsFlushTimer?: ReturnType<typeof setTimeout>;
  private modelsTimer?: ReturnType<typeof setTimeout>;
  private failureUrgentUntil = 0;
  private requestsTimer?: ReturnType<typeof setTimeout>;
  private lastRequestsAt = 0;
  /** queueFingerprint of the last requests_update: an unchanged queue is not sent again. */
  private lastRequestsKey: string | undefined;

  constructor(
    private readonly options: RealtimeOptions,
    private readonly members: TopicMembers,
    private readonly countMessages: (n: number) => void,
  ) {}

  /** Starts the bus listeners and timers (once Bun.serve is listening). */
  start(server: Server<SocketHandler>, sources: RealtimeSources): void {
    this.server = server;
    this.sources = sources;
    const o = this.options;
    const { bus } = sources;
    this.unlisten.push(
      // A new sample goes out at once, so clients see it when it is taken (not up to one hub
      // interval later); the hub's own timer only fills in when no collector is sampling.
      bus.on("metrics.sample", () => {
        this.lastMetricsPublish = Date.now();
        this.publishMetrics();
      }),
      bus.on("model.status", (e) => {
        if (e.status === "error") this.failureUrgentUntil = Date.now() + FAILURE_URGENCY_MS;
        this.scheduleModelsUpdate();
      }),
      bus.on("models.changed", () => this.scheduleModelsUpdate()),
      bus.on("log", (entry) => this.onLog(entry)),
      bus.on("requests.changed", () => this.scheduleRequestsUpdate()),
      // The activity log writes in batches (its flush timer): one push per batch.
      bus.on("activity.recorded", ({ entries }) => this.publishActivity(entries)),
    );
    this.timers.push(
      setInterval(() => {
        if (Date.now() - this.lastMetricsPublish >= o.metricsIntervalMs * 0.9) {
          this.lastMetricsPublish = Date.now();
          this.publishMetrics();
        }
      }, o.metricsIntervalMs),
      setInterval(() => this.publishModels(), o.modelsIntervalMs),
      setInterval(() => this.flushLogs(), o.logsIntervalMs),
    );
  }

  /** Stops every timer and bus listener. Idempotent. */
  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    clearTimeout(this.logsFlushTimer);
    clearTimeout(this.modelsTimer);
    clearTimeout(this.requestsTimer);
    this.requestsTimer = undefined;
    for (const off of this.unlisten) off();
    this.unlisten = [];
  }

  /** Sends one update to every subscriber of the topic: serialized once per protocol. */
  broadcast(topic: Topic, data: unknown): void {
    const members = this.members.of(topic);
    if (members.size === 0 || !this.server) return;
    const type = UPDATE_EVENT[topic];
    const dataJson = JSON.stringify(data);
    const frames: BroadcastFrames = { plain: encodePlain(type, dataJson), socketio: "4" + encodeSocketIoEvent(type, dataJson) };
    // Bun writes to every subscribed socket natively; compress=false (permessage-deflate is off).
    this.server.publish(plainTopic(topic), frames.plain, false);
    this.server.publish(socketIoTopic(topic), frames.socketio, false);
    this.countMessages(members.size);
    for (const conn of [...members]) {
      conn.deliverBroadcast(frames);
      conn.checkBackpressure();
    }
  }

  private publishMetrics(): void {
    if (this.members.of("metrics").size === 0 || !this.sources) return;
    try {
      const metrics = this.sources.metrics();
      if (metrics) this.broadcast("metrics", metrics);
    } catch (err) {
      this.sources.log.error(`realtime: metrics update failed: ${(err as Error).message}`);
    }
  }

  private publishModels(): void {
    clearTimeout(this.modelsTimer);
    this.modelsTimer = undefined;
    if (this.members.of("models").size === 0 || !this.sources) return;
    try {
      this.broadcast("models", { models: this.sources.models(), timestamp: new Date().toISOString() });
    } catch (err) {
      this.sources.log.error(`realtime: models update failed: ${(err as Error).message}`);
    }
  }

  /** A status change goes out at once; a burst of them (a swap) is coalesced into one update. */
  private scheduleModelsUpdate(): void {
    if (this.modelsTimer || this.members.of("models").size === 0) return;
    this.modelsTimer = setTimeout(() => this.publishModels(), this.options.modelsDebounceMs);
  }

  /**
   * The queue changed (a request arrived, got a slot, ended, was cancelled): one requests_update
   * at most every requestsIntervalMs, however many changes came in between. The first change
   * after a quiet spell goes out after modelsDebounceMs, so a burst still coalesces.
   */
  private scheduleRequestsUpdate(): void {
    if (this.requestsTimer || this.members.of("requests").size === 0) return;
    const wait = Math.max(this.options.modelsDebounceMs, this.lastRequestsAt + this.options.requestsIntervalMs - Date.now());
    this.requestsTimer = setTimeout(() => this.publishRequests(), wait);
  }

  private publishRequests(): void {
    this.requestsTimer = undefined;
    if (this.members.of("requests").size === 0 || !this.sources) return;
    let running = 0;
    try {
      const snapshot = this.sources.liveRequests();
      running = snapshot.running;
      const key = queueFingerprint(snapshot.requests);
      if (key !== this.lastRequestsKey) {
        this.lastRequestsKey = key;
        this.lastRequestsAt = Date.now();
        this.broadcast("requests", { ...snapshot, timestamp: new Date().toISOString() });
      }
    } catch (err) {
      this.sources.log.error(`realtime: requests update failed: ${(err as Error).message}`);
    }
    // Tokens of running requests grow without a bus event (the tracker's hot path only counts):
    // while anything runs, look again one interval later; the fingerprint sends only a change.
    if (running > 0) this.scheduleRequestsUpdate();
  }

  private publishActivity(recorded: ActivityEntry[]): void {
    if (this.members.of("activity").size === 0 || recorded.length === 0) return;
    // Newest first, as GET /api/activity and the subscribe state order them.
    const newestFirst = recorded.slice().reverse();
    const entries = newestFirst.slice(0, this.options.maxActivityBatch);
    this.broadcast("activity", {
      entries,
      ...(entries.length < newestFirst.length ? { dropped: newestFirst.length - entries.length } : {}),
      timestamp: new Date().toISOString(),
    });
  }

  private onLog(entry: LogEntry): void {
    if (this.members.of("logs").size === 0) return;
    this.pendingLogs.push(entry);
    if (this.pendingLogs.length > this.options.maxPendingLogs) this.pendingLogs.splice(0, this.pendingLogs.length - this.options.maxPendingLogs);
    const urgent = entry.level === "error" || Date.now() < this.failureUrgentUntil || (this.sources?.modelsLoading() ?? false);
    if (urgent && !this.logsFlushTimer) this.logsFlushTimer = setTimeout(() => this.flushLogs(), this.options.logsBatchMs);
  }

  /** Sends the log lines that arrived since the last logs_update (nothing when there are none). */
  flushLogs(): void {
    clearTimeout(this.logsFlushTimer);
    this.logsFlushTimer = undefined;
    if (this.pendingLogs.length === 0) return;
    const logs = this.pendingLogs;
    this.pendingLogs = [];
    this.broadcast("logs", { logs, timestamp: new Date().toISOString() });
  }
}
