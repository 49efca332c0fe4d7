import type { Server, WebSocketHandler } from "bun";
import { randomToken } from "../crypto";
import { Broadcaster } from "./broadcaster";
import { executeCommand, topicState, TopicMembers } from "./commands";
import type { CommandResult, Connection, ConnectionHost } from "./connection";
import { handleRealtimeRequest, isHubPath, type EntryHost } from "./entry";
import { PlainConnection } from "./plain";
import { SocketIoSession } from "./socketio";
import { MessageRate, realtimeStats, type RealtimeStats } from "./stats";
import {
  DEFAULT_REALTIME_OPTIONS,
  type ClientCommand,
  type ConnectionInfo,
  type RealtimeError,
  type RealtimeOptions,
  type RealtimeSources,
  type SocketHandler,
  type Topic,
} from "./types";

export { REALTIME_PATH } from "./entry";
export type { RealtimeSources } from "./types";
export type { RealtimeStats } from "./stats";

/**
 * The /llamaproxws hub: the single owner of realtime connections and their subscriptions. Five
 * topics (metrics, models, logs, requests, activity) fan out through Bun's native pub/sub to every WebSocket client,
 * whether it speaks plain JSON or Socket.IO; each broadcast is serialized once per protocol.
 * Socket.IO clients on HTTP long-polling get the same frames queued in their session.
 *
 * The hub wires four parts, each in its own file: the HTTP entry (entry.ts: API key, Origin,
 * client limit, upgrade or polling), the commands (commands.ts: subscribe/unsubscribe/ping and
 * the topic members), the broadcasts (broadcaster.ts: bus listeners, timers, fan-out) and the
 * statistics (stats.ts). Connections reach it through ConnectionHost only.
 */
export class RealtimeHub implements ConnectionHost, EntryHost {
  readonly options: RealtimeOptions;
  private readonly connections = new Set<Connection>();
  private readonly sessions = new Map<string, SocketIoSession>();
  private readonly members = new TopicMembers();
  private readonly rate = new MessageRate();
  private readonly broadcaster: Broadcaster;

  /** Set by attach(): until then the hub serves nobody (createApp tests never attach it). */
  private attached?: RealtimeSources;

  get sources(): RealtimeSources | undefined {
    return this.attached;
  }

  /** Only reached once connections exist, i.e. after attach(). */
  private get src(): RealtimeSources {
    if (!this.attached) throw new Error("RealtimeHub used before attach()");
    return this.attached;
  }

  constructor(options: Partial<RealtimeOptions> = {}) {
    this.options = { ...DEFAULT_REALTIME_OPTIONS, ...options };
    this.broadcaster = new Broadcaster(this.options, this.members, (n) => this.countMessages(n));
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

  /** Starts serving once Bun.serve is listening: timers, bus listeners, data sources. */
  attach(server: Server<SocketHandler>, sources: RealtimeSources): void {
    this.attached = sources;
    this.rate.restart();
    this.broadcaster.start(server, sources);
  }

  // ---- HTTP entry (entry.ts) ----------------------------------------------------------------

  /** True for /llamaproxws and /llamaproxws/ (engine.io-client adds the slash). */
  static isHubPath(pathname: string): boolean {
    return isHubPath(pathname);
  }

  /**
   * Handles a request to /llamaproxws: a WebSocket upgrade (plain or Engine.IO) or an Engine.IO
   * polling request. Returns null when the request is for someone else, undefined once upgraded.
   */
  handle(req: Request, server: Server<SocketHandler>): Response | Promise<Response> | undefined | null {
    return handleRealtimeRequest(this, req, server);
  }

  /** Bare polling handshakes that never connected do not count: a flood of them (an <img> is
   * enough) must not lock WebSocket clients out; they have their own, smaller bounds. */
  clientCount(): number {
    return this.connections.size - this.pendingCount;
  }

  // ---- pending polling handshakes (finding 8 of #11) ----------------------------------------

  /** Polling sessions that have not sent their Socket.IO CONNECT yet, by client address. */
  private readonly pending = new Map<string, Set<SocketIoSession>>();
  private pendingCount = 0;
  private readonly untrackPending = new WeakMap<Connection, () => void>();

  pendingRefusal(address: string): string | null {
    const o = this.options;
    if ((this.pending.get(address)?.size ?? 0) >= o.maxPendingHandshakesPerClient) return `${o.maxPendingHandshakesPerClient} handshakes from ${address} have not connected yet`;
    if (this.pendingCount >= o.maxPendingHandshakes) return `${o.maxPendingHandshakes} handshakes have not connected yet`;
    return null;
  }

  trackPending(session: SocketIoSession, address: string): void {
    let set = this.pending.get(address);
    if (!set) this.pending.set(address, (set = new Set()));
    set.add(session);
    this.pendingCount++;
    const untrack = () => {
      if (!set.delete(session)) return;
      this.pendingCount--;
      if (set.size === 0 && this.pending.get(address) === set) this.pending.delete(address);
    };
    this.untrackPending.set(session, untrack);
    session.onEstablished = untrack;
    // A session that has not connected within the bound is closed: it would otherwise hold its
    // place for pingInterval + pingTimeout (~45 s).
    const timer = setTimeout(() => {
      untrack();
      if (!session.established) session.close(1000, "handshake not completed in time");
    }, this.options.handshakeTimeoutMs);
    timer.unref?.();
  }

  newPlain(remote?: string): PlainConnection {
    return new PlainConnection(this.newId(), this, remote);
  }

  register(conn: Connection): void {
    this.connections.add(conn);
  }

  newSession(transport: "polling" | "websocket", remote?: string): SocketIoSession {
    const session = new SocketIoSession(this.newId(), this, transport, remote);
    this.sessions.set(session.id, session);
    this.connections.add(session);
    return session;
  }

  session(sid: string): SocketIoSession | undefined {
    return this.sessions.get(sid);
  }

  forget(conn: Connection): void {
    this.untrackPending.get(conn)?.();
    this.connections.delete(conn);
    if (conn instanceof SocketIoSession) this.sessions.delete(conn.id);
    this.members.forget(conn);
  }

  private newId(): string {
    return randomToken(15);
  }

  // ---- what connections call (ConnectionHost) ---------------------------------------------

  warn(message: string): void {
    this.src.log.warn(message);
  }

  onClosed(conn: Connection): void {
    this.forget(conn);
  }

  execute(conn: Connection, command: ClientCommand): CommandResult {
    return executeCommand(conn, command, {
      members: this.members,
      stateOf: (topic) => topicState(topic, this.src, { logs: this.options.logsTail, activity: this.options.activityTail }),
      flushLogs: () => this.flushLogs(),
      logError: (message) => this.src.log.error(message),
    });
  }

  countMessages(n: number): void {
    this.rate.count(n);
  }

  // ---- broadcasting (broadcaster.ts) ------------------------------------------------------

  /** Sends one update to every subscriber of the topic: serialized once per protocol. */
  broadcast(topic: Topic, data: unknown): void {
    this.broadcaster.broadcast(topic, data);
  }

  /** Sends the log lines that arrived since the last logs_update (nothing when there are none). */
  flushLogs(): void {
    this.broadcaster.flushLogs();
  }

  // ---- statistics (stats.ts) --------------------------------------------------------------

  /** connected_clients, active_connections (subscribed to anything) and messages_per_second. */
  stats(): RealtimeStats {
    return realtimeStats(this.connections, this.rate);
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
    this.broadcaster.stop();
    const notice: RealtimeError = { code: "SERVICE_UNAVAILABLE", message: "Server is shutting down", reconnect: true, retryIn: 1000 };
    for (const conn of [...this.connections]) {
      conn.sendError(notice);
      conn.close(1001, "Server shutting down");
    }
  }
}
