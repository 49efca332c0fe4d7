import { Connection, type ConnectionHost } from "./connection";
import type { ConnectionInfo, HubSocket, SocketHandler, Topic } from "./types";

/**
 * Engine.IO protocol 4, the transport layer under Socket.IO 5 (what socket.io-client 4.x speaks),
 * over Bun's native WebSocket and over HTTP long-polling. Wire format, as engine.io-parser and
 * engine.io-client 6 write it:
 *   packet  = <type digit><data>      0 open, 1 close, 2 ping, 3 pong, 4 message, 5 upgrade, 6 noop
 *   payload = packet ("\x1e" packet)*  (polling bodies; a WebSocket frame carries one packet)
 * The server pings every pingInterval and expects a pong within pingTimeout. A polling session can
 * upgrade: the client opens a WebSocket with ?sid=, sends "2probe", we answer "3probe", it drains
 * its polling requests (we answer the held GET with a noop) and sends "5"; from then on the
 * session lives on the WebSocket.
 *
 * Why written here instead of using @socket.io/bun-engine + socket.io: that engine (0.1.2, checked
 * when the hub was built, commit be91d62) needs the full socket.io server package, sends to each
 * socket one by one without Bun's native pub/sub or any backpressure check (a slow client would
 * buffer without bound), and closes the session on an oversized message, where the hub must answer
 * with an error event and keep the client. Engine.IO 4 + the subset of Socket.IO 5 we serve
 * (namespace "/", events, acks) is small enough to own, and sharing Connection with the plain
 * protocol gives both the same limits, statistics and single serialization per broadcast
 * (bench/ws.ts, bench/RESULTS.md).
 */

export const PACKET = { open: "0", close: "1", ping: "2", pong: "3", message: "4", upgrade: "5", noop: "6" } as const;
export const RECORD_SEPARATOR = "\x1e";

export const encodePayload = (packets: string[]) => packets.join(RECORD_SEPARATOR);
export const decodePayload = (body: string) => (body === "" ? [] : body.split(RECORD_SEPARATOR));

/** Engine.IO's HTTP error answers: engine.io-client shows `message` in connect_error. */
export const ENGINE_ERRORS = {
  UNKNOWN_TRANSPORT: { code: 0, message: "Transport unknown" },
  UNKNOWN_SID: { code: 1, message: "Session ID unknown" },
  BAD_HANDSHAKE_METHOD: { code: 2, message: "Bad handshake method" },
  BAD_REQUEST: { code: 3, message: "Bad request" },
  FORBIDDEN: { code: 4, message: "Forbidden" },
  UNSUPPORTED_PROTOCOL_VERSION: { code: 5, message: "Unsupported protocol version" },
} as const;

export function engineError(err: { code: number; message: string }, status = 400, detail?: string): Response {
  return Response.json({ code: err.code, message: detail ? `${err.message}: ${detail}` : err.message }, { status });
}

const TEXT_HEADERS = { "content-type": "text/plain; charset=UTF-8", "cache-control": "no-store" };
const textResponse = (body: string) => new Response(body, { headers: TEXT_HEADERS });

/** Reads a request body as text, or null once it passes `cap` bytes (without buffering the rest). */
export async function readBodyCapped(req: Request, cap: number): Promise<string | null> {
  const declared = Number(req.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > cap) return null;
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > cap) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * One Engine.IO session. Owns its transport (polling queue or WebSocket), its heartbeat and its
 * upgrade; what travels inside "4" message packets is the subclass's business (Socket.IO).
 */
export abstract class EngineSession extends Connection {
  private transportName: "polling" | "websocket";
  private ws?: HubSocket;
  /** The WebSocket being probed for an upgrade, until the client sends "5". */
  private probe?: HubSocket;
  private upgrading = false;
  /** Packets waiting for the next polling GET. */
  private queue: string[] = [];
  private queueBytes = 0;
  /** The held long-polling GET, answered as soon as there is something to send. */
  private pendingPoll?: (res: Response) => void;
  private flushScheduled = false;
  private pingTimer?: ReturnType<typeof setTimeout>;
  private resumeTimer?: ReturnType<typeof setTimeout>;
  private pongTimer?: ReturnType<typeof setTimeout>;

  constructor(
    id: string,
    protected readonly engine: ConnectionHost,
    transport: "polling" | "websocket",
    remoteAddress?: string,
  ) {
    super(id, "socketio", engine, remoteAddress);
    this.transportName = transport;
  }

  get transport(): "websocket" | "polling" {
    return this.transportName;
  }

  /** The payload of one "4" packet (a Socket.IO packet). */
  protected abstract onMessagePacket(data: string): void;
  /** Bun pub/sub topic name for this protocol's frames. */
  protected abstract socketTopic(topic: Topic): string;
  /** Called once the session is closed, whatever closed it. */
  protected abstract onSessionClosed(): void;

  private openPacket(upgrades: string[]): string {
    return (
      PACKET.open +
      JSON.stringify({
        sid: this.id,
        upgrades,
        pingInterval: this.engine.options.pingIntervalMs,
        pingTimeout: this.engine.options.pingTimeoutMs,
        maxPayload: this.engine.options.hardMaxMessageBytes,
      })
    );
  }

  /** Polling handshake: the open packet is the answer to the first GET. */
  openPolling(): void {
    this.sendPacket(this.openPacket(["websocket"]));
    this.schedulePing();
  }

  /** Direct WebSocket connection (transports: ['websocket']): the open packet is the first frame. */
  openWebSocket(ws: HubSocket): void {
    this.ws = ws;
    this.sendPacket(this.openPacket([]));
    this.schedulePing();
  }

  // ---- sending -------------------------------------------------------------------------------

  sendPacket(packet: string): void {
    if (this.closed) return;
    this.messagesOut++;
    this.bytesOut += packet.length;
    this.engine.countMessages(1);
    this.transmit(packet);
  }

  /** Puts a packet on the current transport (counting is the caller's business). */
  protected transmit(packet: string): void {
    if (this.closed) return;
    if (this.transportName === "websocket" && this.ws) {
      const status = this.ws.send(packet);
      if (status <= 0) this.checkBackpressure();
      return;
    }
    this.queue.push(packet);
    this.queueBytes += packet.length;
    if (!this.checkBackpressure()) return;
    // Batch what is sent in the same tick into one polling response.
    if (!this.flushScheduled && this.pendingPoll) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flushPoll();
      });
    }
  }

  private flushPoll(): void {
    if (!this.pendingPoll || this.queue.length === 0) return;
    const respond = this.pendingPoll;
    this.pendingPoll = undefined;
    const body = encodePayload(this.queue);
    this.queue = [];
    this.queueBytes = 0;
    respond(textResponse(body));
  }

  override info(): ConnectionInfo {
    return this.transportName === "polling" ? { ...super.info(), heldPoll: this.pendingPoll !== undefined } : super.info();
  }

  bufferedBytes(): number {
    if (this.transportName === "websocket") return this.ws && !this.closed ? this.ws.getBufferedAmount() : 0;
    return this.queueBytes;
  }

  bindTopic(topic: Topic): void {
    if (this.transportName === "websocket") this.ws?.subscribe(this.socketTopic(topic));
  }

  unbindTopic(topic: Topic): void {
    if (this.transportName === "websocket" && !this.closed) this.ws?.unsubscribe(this.socketTopic(topic));
  }

  protected override throttle(ms: number): void {
    const ws = this.transportName === "websocket" ? this.ws : undefined;
    if (this.resumeTimer || !ws) return;
    ws.pause();
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      if (!this.closed) ws.resume();
    }, ms);
  }

  // ---- heartbeat ----------------------------------------------------------------------------

  private schedulePing(): void {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      this.sendPacket(PACKET.ping);
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.close(1000, "ping timeout"), this.engine.options.pingTimeoutMs);
    }, this.engine.options.pingIntervalMs);
  }

  // ---- receiving ----------------------------------------------------------------------------

  /** One packet from the client, by whichever transport carried it. */
  onPacket(packet: string, via: "polling" | "websocket" | "probe"): void {
    if (this.closed) return;
    this.messagesIn++;
    this.bytesIn += packet.length;
    this.engine.countMessages(1);
    const type = packet[0];
    // Heartbeat and upgrade packets are protocol upkeep, never rate limited.
    if (type !== PACKET.pong && type !== PACKET.upgrade && !this.admit()) return;
    switch (type) {
      case PACKET.pong:
        clearTimeout(this.pongTimer);
        this.pongTimer = undefined;
        this.schedulePing();
        return;
      case PACKET.ping:
        if (via === "probe" && packet === "2probe") {
          this.probe?.send("3probe");
          // The client now pauses polling; answer its held GET so the pause can complete.
          this.upgrading = true;
          this.answerPollWithNoop();
        } else {
          this.sendPacket(PACKET.pong + packet.slice(1));
        }
        return;
      case PACKET.upgrade:
        if (via === "probe") this.completeUpgrade();
        return;
      case PACKET.message: {
        const size = Buffer.byteLength(packet) - 1;
        if (size > this.engine.options.maxMessageBytes) {
          this.sendError({
            code: "VALIDATION_ERROR",
            message: `Message too large: ${size} bytes`,
            details: `The limit is ${this.engine.options.maxMessageBytes} bytes`,
          });
          return;
        }
        this.onMessagePacket(packet.slice(1));
        return;
      }
      case PACKET.close:
        this.close(1000, "client close");
        return;
      case PACKET.noop:
        return;
      default:
        this.sendError({
          code: "VALIDATION_ERROR",
          message: type === "b" ? "Binary packets are not supported" : "Unknown Engine.IO packet",
          details: JSON.stringify(packet.slice(0, 40)),
        });
    }
  }

  private answerPollWithNoop(): void {
    if (!this.pendingPoll) return;
    if (this.queue.length === 0) this.queue.push(PACKET.noop);
    this.flushPoll();
  }

  private completeUpgrade(): void {
    const ws = this.probe;
    if (!ws) return;
    this.probe = undefined;
    this.upgrading = false;
    this.answerPollWithNoop();
    this.transportName = "websocket";
    this.ws = ws;
    // Whatever waited for a GET goes out first, then the socket joins the pub/sub topics, all in
    // this one tick, so no broadcast can slip between them out of order.
    const waiting = this.queue;
    this.queue = [];
    this.queueBytes = 0;
    for (const packet of waiting) ws.send(packet);
    for (const topic of this.subscriptions) ws.subscribe(this.socketTopic(topic));
  }

  // ---- polling HTTP -------------------------------------------------------------------------

  handlePollGet(req: Request): Response | Promise<Response> {
    if (this.closed) return engineError(ENGINE_ERRORS.UNKNOWN_SID);
    if (this.transportName !== "polling") return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "session upgraded to websocket");
    if (this.pendingPoll) {
      // Two GETs at once mean a confused client; Engine.IO closes the session.
      this.close(1002, "overlapping polling requests");
      return engineError(ENGINE_ERRORS.BAD_REQUEST, 400, "overlapping GET");
    }
    if (this.queue.length === 0 && this.upgrading) this.queue.push(PACKET.noop);
    if (this.queue.length > 0) {
      const body = encodePayload(this.queue);
      this.queue = [];
      this.queueBytes = 0;
      return textResponse(body);
    }
    return new Promise<Response>((resolve) => {
      this.pendingPoll = resolve;
      // A client that goes away frees the slot; the heartbeat closes the session if it is gone.
      req.signal.addEventListener("abort", () => {
        if (this.pendingPoll === resolve) this.pendingPoll = undefined;
      });
    });
  }

  async handlePollPost(req: Request): Promise<Response> {
    if (this.closed) return engineError(ENGINE_ERRORS.UNKNOWN_SID);
    const body = await readBodyCapped(req, this.engine.options.hardMaxMessageBytes);
    if (body === null) {
      // Too big to read: refuse it in-band and keep the session (bad input never kills a client).
      this.messagesIn++;
      this.sendError({
        code: "VALIDATION_ERROR",
        message: "Message too large",
        details: `The limit is ${this.engine.options.maxMessageBytes} bytes per message`,
      });
      return textResponse("ok");
    }
    for (const packet of decodePayload(body)) this.onPacket(packet, "polling");
    return textResponse("ok");
  }

  // ---- WebSocket transport ------------------------------------------------------------------

  attachProbe(ws: HubSocket): void {
    if (this.closed || this.transportName !== "polling") return void ws.close(1002, "no upgrade possible");
    this.probe?.close(1000, "replaced by a newer probe");
    this.probe = ws;
  }

  onSocketMessage(ws: HubSocket, message: string | Buffer): void {
    const text = typeof message === "string" ? message : message.toString("utf8");
    this.onPacket(text, ws === this.ws ? "websocket" : "probe");
  }

  onSocketClose(ws: HubSocket, code: number, reason: string): void {
    if (ws === this.probe) {
      // Failed upgrade: keep polling.
      this.probe = undefined;
      this.upgrading = false;
      return;
    }
    if (ws === this.ws) this.close(code || 1006, reason || "transport close");
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.resumeTimer);
    if (this.pendingPoll) {
      // Deliver what is queued (e.g. the shutdown notice) and the close packet.
      const respond = this.pendingPoll;
      this.pendingPoll = undefined;
      respond(textResponse(encodePayload([...this.queue, PACKET.close])));
    }
    this.queue = [];
    this.queueBytes = 0;
    this.probe?.close(code, reason);
    this.ws?.close(code, reason);
    this.onSessionClosed();
    this.engine.onClosed(this);
  }
}

/** ws.data for an Engine.IO WebSocket: forwards to its session (created at open for direct ones). */
export class EngineSocketHandler implements SocketHandler {
  constructor(
    private readonly session: EngineSession,
    private readonly role: "primary" | "probe",
  ) {}

  onOpen(ws: HubSocket): void {
    if (this.role === "probe") this.session.attachProbe(ws);
    else this.session.openWebSocket(ws);
  }

  onMessage(ws: HubSocket, message: string | Buffer): void {
    this.session.onSocketMessage(ws, message);
  }

  onClose(ws: HubSocket, code: number, reason: string): void {
    this.session.onSocketClose(ws, code, reason);
  }
}
