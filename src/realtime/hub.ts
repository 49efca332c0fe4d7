import type { Server, WebSocketHandler } from "bun";
import { randomBytes } from "node:crypto";
import type { EventBus } from "../events";
import { errorBody } from "../http/envelope";
import type { Logger } from "../logs/logger";
import type { LogEntry } from "../logs/types";
import type { SystemMetrics } from "../metrics/types";
import type { Model } from "../models/types";
import type { BroadcastFrames, Connection } from "./connection";
import { ENGINE_ERRORS, EngineSocketHandler, engineError } from "./engineio";
import { encodePlain, PlainConnection, plainTopic, type CommandContext } from "./plain";
import { encodeSocketIoEvent, SocketIoSession, socketIoTopic, type SocketIoContext } from "./socketio";
import {
  DEFAULT_REALTIME_OPTIONS,
  TOPICS,
  UPDATE_EVENT,
  type ClientCommand,
  type ConnectionInfo,
  type RealtimeError,
  type RealtimeOptions,
  type SocketHandler,
  type Topic,
} from "./types";

export const REALTIME_PATH = "/llamaproxws";

/** Where the hub's data comes from. It reads these; it owns none of them. */
export interface RealtimeSources {
  bus: EventBus;
  log: Logger;
  /**
   * Whether a /llamaproxws request may connect: the API key (?key=, Authorization, X-API-Key) or a
   * console session cookie, when a key is configured. Never throws on malformed credentials.
   */
  authorize(req: Request, queryKey: string | null): boolean;
  /** The collector's latest SystemMetrics (null before its first sample). */
  metrics(): SystemMetrics | null;
  models(): Model[];
  recentLogs(limit: number): LogEntry[];
  /** True while any model is loading: log lines then go out within logsBatchMs. */
  modelsLoading(): boolean;
}

export interface RealtimeStats {
  connected_clients: number;
  active_connections: number;
  messages_per_second: number;
}

/** A failed model keeps logs urgent this long after its status turned to "error". */
const FAILURE_URGENCY_MS = 30_000;
/** messages_per_second is averaged over this many seconds. */
const RATE_WINDOW_S = 10;

/**
 * The /llamaproxws hub: the single owner of realtime connections, their subscriptions and the
 * update timers. Three topics (metrics, models, logs) fan out through Bun's native pub/sub to
 * every WebSocket client, whether it speaks plain JSON or Socket.IO; each broadcast is serialized
 * once per protocol. Socket.IO clients on HTTP long-polling get the same frames queued in their
 * session.
 */
export class RealtimeHub implements CommandContext, SocketIoContext {
  readonly options: RealtimeOptions;
  private server?: Server<SocketHandler>;
  private readonly connections = new Set<Connection>();
  private readonly sessions = new Map<string, SocketIoSession>();
  private readonly members: Record<Topic, Set<Connection>> = { metrics: new Set(), models: new Set(), logs: new Set() };
  private timers: ReturnType<typeof setInterval>[] = [];
  private unlisten: (() => void)[] = [];
  /** When metrics_update last went out (sample-driven or timer-driven). */
  private lastMetricsPublish = 0;
  private pendingLogs: LogEntry[] = [];
  private logsFlushTimer?: ReturnType<typeof setTimeout>;
  private modelsTimer?: ReturnType<typeof setTimeout>;
  private failureUrgentUntil = 0;
  private rateBuckets = new Array<number>(RATE_WINDOW_S).fill(0);
  private rateSecond = Math.floor(Date.now() / 1000);
  private attachedAt = Date.now();

  /** Set by attach(): until then the hub serves nobody (createApp tests never attach it). */
  private sources?: RealtimeSources;

  /** Only reached once connections exist, i.e. after attach(). */
  private get src(): RealtimeSources {
    if (!this.sources) throw new Error("RealtimeHub used before attach()");
    return this.sources;
  }

  constructor(options: Partial<RealtimeOptions> = {}) {
    this.options = { ...DEFAULT_REALTIME_OPTIONS, ...options };
    this.websocket = {
      open: (ws) => ws.data.onOpen(ws),
      message: (ws, message) => ws.data.onMessage(ws, message),
      close: (ws, code, reason) => ws.data.onClose(ws, code, reason),
      error: (err) => this.sources?.log.error(`realtime handler failed: ${err.message}`, { stack: err.stack }),
      // Bigger frames make Bun close with 1009 before buffering them; smaller-but-too-big ones
      // get an in-band error (maxMessageBytes) and the connection stays.
      maxPayloadLength: this.options.hardMaxMessageBytes,
      // Our own check closes slow consumers with a reason well before this; Bun's limit is the
      // backstop that bounds memory even if one huge message were queued.
      backpressureLimit: this.options.slowConsumerBytes * 2,
      closeOnBackpressureLimit: true,
      // Plain clients get protocol-level pings from Bun; Engine.IO has its own heartbeat.
      idleTimeout: 120,
      sendPings: true,
      perMessageDeflate: false,
    };
  }

  /** Bun.serve's `websocket` option: every socket's ws.data knows how to handle it. */
  readonly websocket: WebSocketHandler<SocketHandler>;

  // HubContext / EngineContext views of the options.
  get maxMessageBytes() { return this.options.maxMessageBytes; }
  get slowConsumerBytes() { return this.options.slowConsumerBytes; }
  get rateLimitPerSecond() { return this.options.rateLimitPerSecond; }
  get rateLimitBurst() { return this.options.rateLimitBurst; }
  get floodCloseDrops() { return this.options.floodCloseDrops; }
  get pingIntervalMs() { return this.options.pingIntervalMs; }
  get pingTimeoutMs() { return this.options.pingTimeoutMs; }
  get hardMaxMessageBytes() { return this.options.hardMaxMessageBytes; }

  /** Starts serving once Bun.serve is listening: timers, bus listeners, data sources. */
  attach(server: Server<SocketHandler>, sources: RealtimeSources): void {
    this.server = server;
    this.sources = sources;
    this.attachedAt = Date.now();
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

  // ---- HTTP entry -------------------------------------------------------------------------

  /** True for /llamaproxws and /llamaproxws/ (engine.io-client adds the slash). */
  static isHubPath(pathname: string): boolean {
    return pathname === REALTIME_PATH || pathname === REALTIME_PATH + "/";
  }

  /**
   * Handles a request to /llamaproxws: a WebSocket upgrade (plain or Engine.IO) or an Engine.IO
   * polling request. Returns null when the request is for someone else, undefined once upgraded.
   */
  handle(req: Request, server: Server<SocketHandler>): Response | Promise<Response> | undefined | null {
    if (!req.url.includes(REALTIME_PATH)) return null;
    const url = new URL(req.url);
    if (!RealtimeHub.isHubPath(url.pathname)) return null;
    const sources = this.sources;
    if (!sources) return Response.json(errorBody("SERVICE_UNAVAILABLE", "Realtime hub not started"), { status: 503 });
    const query = url.searchParams;
    const eio = query.get("EIO");
    if (!sources.authorize(req, query.get("key"))) {
      if (eio !== null) return engineError(ENGINE_ERRORS.FORBIDDEN, 401, "invalid or missing API key");
      return Response.json(errorBody("UNAUTHORIZED", "Invalid or missing API key", "Pass ?key=<key>, Authorization: Bearer <key>, X-API-Key or log in to the console"), {
        status: 401,
        headers: { "WWW-Authenticate": 'Bearer realm="llama-async-proxy"' },
      });
    }
    // Host, Origin (null included) and Fetch Metadata were checked by the request guard
    // (src/http/guard.ts) before server.ts handed the request here.
    const isUpgrade = req.headers.get("upgrade")?.toLowerCase() === "websocket";
    // A request that would add a client (not a poll or an upgrade probe of an existing session).
    if (query.get("sid") === null && this.connections.size >= this.options.maxClients) {
      const detail = `${this.options.maxClients} clients are connected`;
      if (eio !== null) return engineError({ code: 3, message: "Too many clients" }, 503, detail);
      return Response.json(errorBody("SERVICE_UNAVAILABLE", "Too many realtime clients", detail), { status: 503, headers: { "Retry-After": "5" } });
    }
    const remote = server.requestIP(req)?.address;

    if (eio === null) {
      if (!isUpgrade) {
        return Response.json(
          errorBody("VALIDATION_ERROR", "WebSocket upgrade required", `Connect with new WebSocket("ws://host${REALTIME_PATH}") or socket.io-client (path "${REALTIME_PATH}")`),
          { status: 426, headers: { Upgrade: "websocket" } },
        );
      }
      const conn = new PlainConnection(this.newId(), this, remote);
      if (!server.upgrade(req, { data: conn })) return Response.json(errorBody("VALIDATION_ERROR", "WebSocket upgrade failed"), { status: 400 });
      this.connections.add(conn);
      return undefined;
    }

    if (eio !== "4") return engineError(ENGINE_ERRORS.UNSUPPORTED_PROTOCOL_VERSION);
    const transport = query.get("transport");
    const sid = query.get("sid");
    if (transport === "websocket") {
      if (!isUpgrade) return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "expected a WebSocket upgrade");
      if (sid !== null) {
        const session = this.sessions.get(sid);
        if (!session) return engineError(ENGINE_ERRORS.UNKNOWN_SID);
        if (session.transport !== "polling") return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "already upgraded");
        return server.upgrade(req, { data: new EngineSocketHandler(session, "probe") })
          ? undefined
          : engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "upgrade failed");
      }
      const session = this.newSession("websocket", remote);
      if (!server.upgrade(req, { data: new EngineSocketHandler(session, "primary") })) {
        this.forget(session);
        return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "upgrade failed");
      }
      return undefined;
    }
    if (transport !== "polling") return engineError(ENGINE_ERRORS.UNKNOWN_TRANSPORT);
    if (sid === null) {
      if (req.method !== "GET") return engineError(ENGINE_ERRORS.BAD_HANDSHAKE_METHOD);
      const session = this.newSession("polling", remote);
      session.openPolling();
      return session.handlePollGet(req);
    }
    const session = this.sessions.get(sid);
    if (!session) return engineError(ENGINE_ERRORS.UNKNOWN_SID);
    if (req.method === "GET") return session.handlePollGet(req);
    if (req.method === "POST") return session.handlePollPost(req);
    return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, `method ${req.method}`);
  }

  warn(message: string): void {
    this.src.log.warn(message);
  }

  private newId(): string {
    return randomBytes(15).toString("base64url");
  }

  private newSession(transport: "polling" | "websocket", remote?: string): SocketIoSession {
    const session = new SocketIoSession(this.newId(), this, transport, remote);
    this.sessions.set(session.id, session);
    this.connections.add(session);
    return session;
  }

  private forget(conn: Connection): void {
    this.connections.delete(conn);
    if (conn instanceof SocketIoSession) this.sessions.delete(conn.id);
    for (const topic of TOPICS) this.members[topic].delete(conn);
  }

  onClosed(conn: Connection): void {
    this.forget(conn);
  }

  // ---- commands ---------------------------------------------------------------------------

  execute(conn: Connection, command: ClientCommand) {
    switch (command.kind) {
      case "ping":
        return { ok: true as const, reply: { type: "pong", data: { timestamp: new Date().toISOString() } } };
      case "subscribe": {
        const { topic } = command;
        let state: unknown;
        try {
          state = this.stateOf(topic);
        } catch (err) {
          this.src.log.error(`realtime: cannot build ${topic} state: ${(err as Error).message}`);
          return { ok: false as const, error: { code: "INTERNAL_ERROR", message: `Cannot read ${topic} right now` } satisfies RealtimeError };
        }
        // Pending log lines go to the existing subscribers first, so the newcomer's tail and the
        // next logs_update never overlap.
        if (topic === "logs") this.flushLogs();
        conn.subscriptions.add(topic);
        this.members[topic].add(conn);
        conn.bindTopic(topic);
        return {
          ok: true as const,
          reply: { type: "subscribed", data: { type: topic, subscriptions: [...conn.subscriptions] } },
          // The current state straight away, so a new page is not empty until the next tick.
          // (Metrics before the collector's first sample: nothing yet; the first sample follows.)
          after: () => {
            if (state !== null) conn.sendEvent(UPDATE_EVENT[topic], state);
          },
        };
      }
      case "unsubscribe": {
        const { topic } = command;
        conn.subscriptions.delete(topic);
        this.members[topic].delete(conn);
        conn.unbindTopic(topic);
        return { ok: true as const, reply: { type: "unsubscribed", data: { type: topic, subscriptions: [...conn.subscriptions] } } };
      }
    }
  }

  private stateOf(topic: Topic): unknown {
    const timestamp = new Date().toISOString();
    switch (topic) {
      case "metrics":
        return this.src.metrics();
      case "models":
        return { models: this.src.models(), timestamp };
      case "logs":
        return { logs: this.src.recentLogs(this.options.logsTail), timestamp };
    }
  }

  // ---- broadcasting -----------------------------------------------------------------------

  /** Sends one update to every subscriber of the topic: serialized once per protocol. */
  broadcast(topic: Topic, data: unknown): void {
    const members = this.members[topic];
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
    if (this.members.metrics.size === 0) return;
    try {
      const metrics = this.src.metrics();
      if (metrics) this.broadcast("metrics", metrics);
    } catch (err) {
      this.src.log.error(`realtime: metrics update failed: ${(err as Error).message}`);
    }
  }

  private publishModels(): void {
    clearTimeout(this.modelsTimer);
    this.modelsTimer = undefined;
    if (this.members.models.size === 0) return;
    try {
      this.broadcast("models", { models: this.src.models(), timestamp: new Date().toISOString() });
    } catch (err) {
      this.src.log.error(`realtime: models update failed: ${(err as Error).message}`);
    }
  }

  /** A status change goes out at once; a burst of them (a swap) is coalesced into one update. */
  private scheduleModelsUpdate(): void {
    if (this.modelsTimer || this.members.models.size === 0) return;
    this.modelsTimer = setTimeout(() => this.publishModels(), this.options.modelsDebounceMs);
  }

  private onLog(entry: LogEntry): void {
    if (this.members.logs.size === 0) return;
    this.pendingLogs.push(entry);
    if (this.pendingLogs.length > this.options.maxPendingLogs) this.pendingLogs.splice(0, this.pendingLogs.length - this.options.maxPendingLogs);
    const urgent = entry.level === "error" || Date.now() < this.failureUrgentUntil || this.src.modelsLoading();
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

  // ---- statistics -------------------------------------------------------------------------

  countMessages(n: number): void {
    const second = this.advanceRate();
    this.rateBuckets[second % RATE_WINDOW_S]! += n;
  }

  private advanceRate(): number {
    const second = Math.floor(Date.now() / 1000);
    if (second - this.rateSecond >= RATE_WINDOW_S) this.rateBuckets.fill(0);
    else for (let s = this.rateSecond + 1; s <= second; s++) this.rateBuckets[s % RATE_WINDOW_S] = 0;
    if (second > this.rateSecond) this.rateSecond = second;
    return second;
  }

  /** connected_clients, active_connections (subscribed to anything) and messages_per_second. */
  stats(): RealtimeStats {
    this.advanceRate();
    const total = this.rateBuckets.reduce((a, b) => a + b, 0);
    // Over the window, or over the time since start when that is shorter (at least 1 s).
    const elapsed = Math.max(1, Math.min(RATE_WINDOW_S, (Date.now() - this.attachedAt) / 1000));
    let active = 0;
    for (const c of this.connections) if (c.subscriptions.size > 0) active++;
    return {
      connected_clients: this.connections.size,
      active_connections: active,
      messages_per_second: Math.round((total / elapsed) * 10) / 10,
    };
  }

  /** Per-connection statistics. */
  clients(): ConnectionInfo[] {
    return [...this.connections].map((c) => c.info());
  }

  /**
   * Shutdown: tells every client (error with reconnect/retryIn, then a 1001 close) and stops the
   * timers. Idempotent.
   */
  close(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    clearTimeout(this.logsFlushTimer);
    clearTimeout(this.modelsTimer);
    for (const off of this.unlisten) off();
    this.unlisten = [];
    const notice: RealtimeError = { code: "SERVICE_UNAVAILABLE", message: "Server is shutting down", reconnect: true, retryIn: 1000 };
    for (const conn of [...this.connections]) {
      conn.sendError(notice);
      conn.close(1001, "Server shutting down");
    }
  }
}
