import { randomToken } from "../crypto";
import type { BroadcastFrames } from "./connection";
import type { ConnectionHost } from "./connection";
import { EngineSession } from "./engineio";
import { parseSubscription } from "./plain";
import type { ClientCommand, RealtimeError, Topic } from "./types";

/**
 * Socket.IO protocol 5 inside Engine.IO "4" packets, namespace "/" only:
 *   <type>[<namespace>,][<ack id>][<JSON data>]
 *   0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5/6 binary (not supported here)
 * e.g. client `40`, server `40{"sid":"..."}`; client `42["subscribe",{"type":"metrics"}]`;
 * server `42["metrics_update",{...SystemMetrics}]`; with an ack: client `421[...]`, server `431[...]`.
 */

export const SIO = { CONNECT: 0, DISCONNECT: 1, EVENT: 2, ACK: 3, CONNECT_ERROR: 4, BINARY_EVENT: 5, BINARY_ACK: 6 } as const;

export interface SocketIoPacket {
  type: number;
  nsp: string;
  id?: number;
  data?: unknown;
}

/** Decodes one Socket.IO packet; never throws. */
export function decodeSocketIoPacket(text: string): { ok: true; packet: SocketIoPacket } | { ok: false; reason: string } {
  const type = Number(text[0]);
  if (!(text.length > 0 && Number.isInteger(type) && type >= 0 && type <= 6)) return { ok: false, reason: "unknown packet type" };
  if (type === SIO.BINARY_EVENT || type === SIO.BINARY_ACK) return { ok: false, reason: "binary packets are not supported" };
  let i = 1;
  let nsp = "/";
  if (text[i] === "/") {
    const comma = text.indexOf(",", i);
    const end = comma === -1 ? text.length : comma;
    nsp = text.slice(i, end);
    i = comma === -1 ? text.length : comma + 1;
  }
  let id: number | undefined;
  const digits = /^\d+/.exec(text.slice(i, i + 16));
  if (digits) {
    id = Number(digits[0]);
    i += digits[0].length;
  }
  let data: unknown;
  if (i < text.length) {
    try {
      data = JSON.parse(text.slice(i));
    } catch {
      return { ok: false, reason: "malformed JSON" };
    }
  }
  if (type === SIO.EVENT && !(Array.isArray(data) && typeof data[0] === "string")) {
    return { ok: false, reason: "an event must be an array whose first item is the event name" };
  }
  return { ok: true, packet: { type, nsp, ...(id !== undefined ? { id } : {}), ...(data !== undefined ? { data } : {}) } };
}

export const encodeSocketIoEvent = (event: string, dataJson: string) => `2[${JSON.stringify(event)},${dataJson}]`;
export const socketIoTopic = (topic: Topic) => `sio:${topic}`;

/** A socket.io-client connection: an Engine.IO session speaking Socket.IO on namespace "/". */
export class SocketIoSession extends EngineSession {
  private nspConnected = false;
  /** The client sent its namespace CONNECT at least once: a real client, not a bare handshake. */
  established = false;
  /** Called once, at the first CONNECT (the hub stops counting the session as a pending handshake). */
  onEstablished?: () => void;

  constructor(id: string, private readonly ctx: ConnectionHost, transport: "polling" | "websocket", remoteAddress?: string) {
    super(id, ctx, transport, remoteAddress);
  }

  protected socketTopic(topic: Topic): string {
    return socketIoTopic(topic);
  }

  protected onSessionClosed(): void {
    this.nspConnected = false;
  }

  sendEvent(type: string, data: unknown): void {
    this.sendPacket("4" + encodeSocketIoEvent(type, JSON.stringify(data ?? null)));
  }

  private sendAck(id: number, data: unknown): void {
    this.sendPacket(`43${id}${JSON.stringify([data])}`);
  }

  deliverBroadcast(frames: BroadcastFrames): void {
    this.messagesOut++;
    this.bytesOut += frames.socketio.length;
    // On a WebSocket, Bun's publish already delivered it; a polling session queues it.
    if (this.transport === "polling") this.transmit(frames.socketio);
  }

  protected onMessagePacket(text: string): void {
    const decoded = decodeSocketIoPacket(text);
    if (!decoded.ok) {
      return this.sendError({ code: "VALIDATION_ERROR", message: "Malformed Socket.IO packet", details: decoded.reason });
    }
    const { type, nsp, id, data } = decoded.packet;
    if (nsp !== "/") {
      // Only the main namespace exists; say so the way socket.io servers do.
      if (type === SIO.CONNECT) this.sendPacket(`44${nsp},${JSON.stringify({ message: "Invalid namespace" })}`);
      return;
    }
    switch (type) {
      case SIO.CONNECT:
        this.nspConnected = true;
        if (!this.established) {
          this.established = true;
          this.onEstablished?.();
        }
        // socket.io-client 4 requires a sid in the CONNECT answer (it treats its absence as v2).
        this.sendPacket(`40${JSON.stringify({ sid: randomToken(15) })}`);
        return;
      case SIO.DISCONNECT:
        this.nspConnected = false;
        for (const topic of [...this.subscriptions]) this.ctx.execute(this, { kind: "unsubscribe", topic });
        return;
      case SIO.ACK:
        return; // we never ask clients for acks
      case SIO.EVENT:
        return this.onEvent(data as [string, ...unknown[]], id);
      default:
        return this.sendError({ code: "VALIDATION_ERROR", message: "Unexpected Socket.IO packet", details: `type ${type}` });
    }
  }

  private onEvent([name, payload]: [string, ...unknown[]], ackId?: number): void {
    const fail = (error: RealtimeError) => {
      this.sendError(error);
      if (ackId !== undefined) this.sendAck(ackId, { ok: false, error });
    };
    if (!this.nspConnected) return fail({ code: "VALIDATION_ERROR", message: "Not connected to namespace \"/\"" });
    let command: ClientCommand;
    switch (name) {
      case "subscribe":
      case "unsubscribe": {
        const sub = parseSubscription(payload);
        if (!sub.ok) return fail(sub.error);
        command = { kind: name, topic: sub.topic };
        break;
      }
      case "ping":
        command = { kind: "ping" };
        break;
      default:
        return fail({
          code: "VALIDATION_ERROR",
          message: `Unknown event ${JSON.stringify(name).slice(0, 80)}`,
          details: "Expected one of subscribe, unsubscribe, ping",
        });
    }
    const result = this.ctx.execute(this, command);
    if (!result.ok) return fail(result.error);
    if (ackId !== undefined) this.sendAck(ackId, { ok: true, ...(result.reply.data as object) });
    else if (command.kind === "ping") this.sendEvent(result.reply.type, result.reply.data);
    result.after?.();
  }
}
