import type { ServerWebSocket } from "bun";
import type { EventBus } from "../events";
import type { Logger } from "../logs/logger";
import type { ActivityEntry } from "../activity/log";
import type { QueueSnapshot } from "../activity/tracker";
import type { LogEntry } from "../logs/types";
import type { SystemMetrics } from "../metrics/types";
import type { Model } from "../models/types";

/**
 * What a client can subscribe to: the seed API's three (SubscribeMessage.data.type) plus the
 * live request queue and the activity log (#14).
 */
export const TOPICS = ["metrics", "models", "logs", "requests", "activity"] as const;
export type Topic = (typeof TOPICS)[number];

/** The server -> client event that carries each topic's state. */
export const UPDATE_EVENT: Record<Topic, `${Topic}_update`> = {
  metrics: "metrics_update",
  models: "models_update",
  logs: "logs_update",
  requests: "requests_update",
  activity: "activity_update",
};

/** ErrorMessage.data of the seed API, plus `details` for the specifics. */
export interface RealtimeError {
  code: string;
  message: string;
  reconnect?: boolean;
  retryIn?: number;
  details?: string;
}

/** What a client asked for, once its protocol (plain JSON or Socket.IO) has been decoded. */
export type ClientCommand =
  | { kind: "subscribe"; topic: Topic }
  | { kind: "unsubscribe"; topic: Topic }
  | { kind: "ping" };

/** Tunables of the hub. Tests make the intervals small; defaults follow the seed API. */
export interface RealtimeOptions {
  /** metrics_update period (the seed API: every 10 s). */
  metricsIntervalMs: number;
  /** models_update period (the seed API: every 30 s); status changes go out at once as well. */
  modelsIntervalMs: number;
  /** logs_update period when nothing is loading or failing (the seed API: every 15 s). */
  logsIntervalMs: number;
  /** While a model loads or fails, new log lines go out batched over this window. */
  logsBatchMs: number;
  /** Coalesces bursts of model status events into one models_update. */
  modelsDebounceMs: number;
  /**
   * requests_update goes out at most this often while the queue changes (arrivals, leases,
   * ends, tokens of running requests), and only when it did change.
   */
  requestsIntervalMs: number;
  /** How many recent activity rows a new activity subscriber gets straight away. */
  activityTail: number;
  /** At most this many rows go out in one activity_update (the rest are counted in `dropped`). */
  maxActivityBatch: number;
  /** How many recent log entries a new logs subscriber gets straight away. */
  logsTail: number;
  /** At most this many entries wait for the next logs_update; older ones are dropped. */
  maxPendingLogs: number;
  /** Bigger client messages get an `error` reply and are ignored; the connection stays open. */
  maxMessageBytes: number;
  /**
   * Bun's maxPayloadLength: frames bigger than this are refused by Bun itself, which closes the
   * socket with 1009 before we ever see them (it must not buffer an unbounded frame for us).
   */
  hardMaxMessageBytes: number;
  /** A client with more than this many bytes queued and unsent is closed as a slow consumer. */
  slowConsumerBytes: number;
  /** New connections beyond this many are refused with 503 (every client costs memory and a timer). */
  maxClients: number;
  /**
   * Engine.IO polling handshakes that have not connected yet (no Socket.IO CONNECT): at most
   * this many per client address, and each one is closed after handshakeTimeoutMs. They do not
   * count towards maxClients, so a flood of bare handshakes (an <img> is enough to make one)
   * cannot lock WebSocket clients out (finding 8 of #11).
   */
  maxPendingHandshakesPerClient: number;
  /** All addresses together (bounds memory whatever the number of addresses). */
  maxPendingHandshakes: number;
  handshakeTimeoutMs: number;
  /** Per-connection inbound rate: sustained messages per second and burst size. */
  rateLimitPerSecond: number;
  rateLimitBurst: number;
  /**
   * A client that has this many messages dropped within 10 s keeps flooding after being told:
   * it is closed (1008) rather than costing a callback per message for as long as it likes.
   */
  floodCloseDrops: number;
  /**
   * Browser origins allowed besides the server's own (see src/http/guard.ts, which enforces it on
   * every route, this socket included).
   * WebSockets are not covered by CORS, so without this check any web page a user visits could
   * open /llamaproxws on their localhost proxy and read its logs. "*" allows every origin.
   * Clients that send no Origin (CLIs, socket.io-client in Node/Bun) are not affected.
   */
  allowedOrigins: string[];
  /** Engine.IO heartbeat (sent to socket.io clients in the handshake). */
  pingIntervalMs: number;
  pingTimeoutMs: number;
}

export const DEFAULT_REALTIME_OPTIONS: RealtimeOptions = {
  metricsIntervalMs: 10_000,
  modelsIntervalMs: 30_000,
  logsIntervalMs: 15_000,
  logsBatchMs: 250,
  modelsDebounceMs: 25,
  requestsIntervalMs: 500,
  activityTail: 50,
  maxActivityBatch: 500,
  logsTail: 100,
  maxPendingLogs: 1000,
  maxMessageBytes: 64 * 1024,
  hardMaxMessageBytes: 1024 * 1024,
  slowConsumerBytes: 1024 * 1024,
  maxClients: 5000,
  maxPendingHandshakesPerClient: 16,
  maxPendingHandshakes: 256,
  handshakeTimeoutMs: 10_000,
  rateLimitPerSecond: 20,
  rateLimitBurst: 40,
  floodCloseDrops: 5000,
  allowedOrigins: [],
  pingIntervalMs: 25_000,
  pingTimeoutMs: 20_000,
};

/**
 * What Bun keeps in `ws.data`: the object that handles that socket's events. Plain clients and
 * Engine.IO transports each bring their own, so one `websocket` handler serves both protocols.
 */
export interface SocketHandler {
  onOpen(ws: HubSocket): void;
  onMessage(ws: HubSocket, message: string | Buffer): void;
  onClose(ws: HubSocket, code: number, reason: string): void;
}
export type HubSocket = ServerWebSocket<SocketHandler>;

/** Per-connection statistics (GET-able through hub.clients()). */
export interface ConnectionInfo {
  id: string;
  protocol: "plain" | "socketio";
  transport: "websocket" | "polling";
  connectedAt: string;
  subscriptions: Topic[];
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
  remoteAddress?: string;
  /** Polling sessions: a long-poll GET is being held open right now. */
  heldPoll?: boolean;
}

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
  /** The live request queue, as GET /api/requests answers it. */
  liveRequests(): QueueSnapshot;
  /** The newest activity rows, newest first. */
  recentActivity(limit: number): ActivityEntry[];
}
