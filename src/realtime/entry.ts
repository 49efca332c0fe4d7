import type { Server } from "bun";
import { errorResponse } from "../http/envelope";
import { ApiError } from "../http/errors";
import type { Connection } from "./connection";
import { ENGINE_ERRORS, EngineSocketHandler, engineError } from "./engineio";
import type { PlainConnection } from "./plain";
import type { SocketIoSession } from "./socketio";
import type { RealtimeOptions, RealtimeSources, SocketHandler } from "./types";

// The HTTP entry of /llamaproxws: who may connect (API key, client limit; Host and Origin are the
// request guard's, src/http/guard.ts) and how the
// request becomes a connection (plain WebSocket upgrade, Engine.IO WebSocket or long-polling).

export const REALTIME_PATH = "/llamaproxws";

/** True for /llamaproxws and /llamaproxws/ (engine.io-client adds the slash). */
export function isHubPath(pathname: string): boolean {
  return pathname === REALTIME_PATH || pathname === REALTIME_PATH + "/";
}

/** What the entry needs from the hub, which owns the connections. */
export interface EntryHost {
  readonly options: RealtimeOptions;
  /** Set once the hub is attached; until then it serves nobody. */
  readonly sources: RealtimeSources | undefined;
  /** Connections open now (each costs memory and a timer: bounded by maxClients). */
  clientCount(): number;
  /** A plain client, not registered yet (it is once its upgrade succeeded). */
  newPlain(remote?: string): PlainConnection;
  register(conn: Connection): void;
  /** A Socket.IO session, registered at once (a polling handshake is answered before any upgrade). */
  newSession(transport: "polling" | "websocket", remote?: string): SocketIoSession;
  session(sid: string): SocketIoSession | undefined;
  forget(conn: Connection): void;
  /** Why a new polling handshake from this address is refused now (finding 8 of #11), or null. */
  pendingRefusal(address: string): string | null;
  /** Counts a polling session until it connects; closes it when it does not in time. */
  trackPending(session: SocketIoSession, address: string): void;
}

/**
 * Handles a request to /llamaproxws: a WebSocket upgrade (plain or Engine.IO) or an Engine.IO
 * polling request. Returns null when the request is for someone else, undefined once upgraded.
 */
export function handleRealtimeRequest(host: EntryHost, req: Request, server: Server<SocketHandler>): Response | Promise<Response> | undefined | null {
  if (!req.url.includes(REALTIME_PATH)) return null;
  const url = new URL(req.url);
  if (!isHubPath(url.pathname)) return null;
  const sources = host.sources;
  if (!sources) return errorResponse(new ApiError("SERVICE_UNAVAILABLE", "Realtime hub not started"));
  const query = url.searchParams;
  const eio = query.get("EIO");
  if (!sources.authorize(req, query.get("key"))) {
    if (eio !== null) return engineError(ENGINE_ERRORS.FORBIDDEN, 401, "invalid or missing API key");
    return errorResponse(
      new ApiError("UNAUTHORIZED", "Invalid or missing API key", "Pass ?key=<key>, Authorization: Bearer <key>, X-API-Key or log in to the console", {
        "WWW-Authenticate": 'Bearer realm="llama-async-proxy"',
      }),
    );
  }
  // Host, Origin (null included) and Fetch Metadata were checked by the request guard
  // (src/http/guard.ts) before server.ts handed the request here.
  const isUpgrade = req.headers.get("upgrade")?.toLowerCase() === "websocket";
  // A request that would add a client (not a poll or an upgrade probe of an existing session).
  if (query.get("sid") === null && host.clientCount() >= host.options.maxClients) {
    const detail = `${host.options.maxClients} clients are connected`;
    if (eio !== null) return engineError({ code: 3, message: "Too many clients" }, 503, detail);
    return errorResponse(new ApiError("SERVICE_UNAVAILABLE", "Too many realtime clients", detail, { "Retry-After": "5" }));
  }
  const remote = server.requestIP(req)?.address;

  if (eio === null) {
    if (!isUpgrade) {
      return errorResponse(
        new ApiError("UPGRADE_REQUIRED", "WebSocket upgrade required", `Connect with new WebSocket("ws://host${REALTIME_PATH}") or socket.io-client (path "${REALTIME_PATH}")`, { Upgrade: "websocket" }),
      );
    }
    const conn = host.newPlain(remote);
    if (!server.upgrade(req, { data: conn })) return errorResponse(new ApiError("VALIDATION_ERROR", "WebSocket upgrade failed"));
    host.register(conn);
    return undefined;
  }

  if (eio !== "4") return engineError(ENGINE_ERRORS.UNSUPPORTED_PROTOCOL_VERSION);
  const transport = query.get("transport");
  const sid = query.get("sid");
  if (transport === "websocket") {
    if (!isUpgrade) return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "expected a WebSocket upgrade");
    if (sid !== null) {
      const session = host.session(sid);
      if (!session) return engineError(ENGINE_ERRORS.UNKNOWN_SID);
      if (session.transport !== "polling") return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "already upgraded");
      return server.upgrade(req, { data: new EngineSocketHandler(session, "probe") })
        ? undefined
        : engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "upgrade failed");
    }
    const session = host.newSession("websocket", remote);
    if (!server.upgrade(req, { data: new EngineSocketHandler(session, "primary") })) {
      host.forget(session);
      return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "upgrade failed");
    }
    return undefined;
  }
  if (transport !== "polling") return engineError(ENGINE_ERRORS.UNKNOWN_TRANSPORT);
  if (sid === null) {
    if (req.method !== "GET") return engineError(ENGINE_ERRORS.BAD_HANDSHAKE_METHOD);
    const refusal = host.pendingRefusal(remote ?? "unknown");
    if (refusal) return engineError({ code: 3, message: "Too many pending handshakes" }, 429, refusal);
    const session = host.newSession("polling", remote);
    host.trackPending(session, remote ?? "unknown");
    session.openPolling();
    return session.handlePollGet(req);
  }
  const session = host.session(sid);
  if (!session) return engineError(ENGINE_ERRORS.UNKNOWN_SID);
  if (req.method === "GET") return session.handlePollGet(req);
  if (req.method === "POST") return session.handlePollPost(req);
  return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, `method ${req.method}`);
}
