import { z } from "../zod";
import { describeIssues } from "../http/validate";
import { Connection, type BroadcastFrames, type ConnectionHost } from "./connection";
import { TOPICS, type ClientCommand, type HubSocket, type RealtimeError, type SocketHandler, type Topic } from "./types";

/**
 * The plain JSON protocol of /llamaproxws: WebSocketMessage `{type, data, timestamp, requestId?}`
 * both ways. Client -> server: subscribe / unsubscribe (data.type = metrics|models|logs) and ping.
 */

const envelopeSchema = z.object({
  type: z.string({ error: "type must be a string" }).check(z.minLength(1, "type must not be empty")),
  data: z.optional(z.unknown()),
  timestamp: z.optional(z.number()),
  requestId: z.optional(z.union([z.string().check(z.maxLength(200)), z.number()])),
});

/** The data of subscribe/unsubscribe; also what Socket.IO clients emit. */
export const subscriptionSchema = z.object(
  {
    type: z.enum(TOPICS, {
      error: (issue) =>
        `Unknown subscription ${JSON.stringify(issue.input)}; expected one of ${TOPICS.join(", ")}`,
    }),
  },
  { error: `Subscription data must be an object like {"type":"metrics"}` },
);

export const KNOWN_TYPES = ["subscribe", "unsubscribe", "ping"] as const;

export type Parsed =
  | { ok: true; command: ClientCommand; requestId?: string | number }
  | { ok: false; error: RealtimeError; requestId?: string | number };

const validation = (message: string, details?: string): RealtimeError => ({
  code: "VALIDATION_ERROR",
  message,
  ...(details ? { details } : {}),
});

/** Parses the data of a subscribe/unsubscribe into its topic, or says what is wrong with it. */
export function parseSubscription(data: unknown): { ok: true; topic: Topic } | { ok: false; error: RealtimeError } {
  const r = subscriptionSchema.safeParse(data);
  if (r.success) return { ok: true, topic: r.data.type };
  const first = r.error.issues[0];
  const unknownTopic = first?.code === "invalid_value";
  return {
    ok: false,
    error: validation(unknownTopic ? first.message : "Invalid subscription", describeIssues(r.error)),
  };
}

/** Decodes one client message. Never throws: bad input becomes an error to send back. */
export function parsePlainMessage(text: string): Parsed {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: validation("Malformed JSON", (err as Error).message) };
  }
  const env = envelopeSchema.safeParse(raw);
  if (!env.success) return { ok: false, error: validation("Invalid message", describeIssues(env.error)) };
  const { type, data, requestId } = env.data;
  const reply = <T extends object>(x: T) => ({ ...x, ...(requestId !== undefined ? { requestId } : {}) });
  switch (type) {
    case "ping":
      return reply({ ok: true as const, command: { kind: "ping" as const } });
    case "subscribe":
    case "unsubscribe": {
      const sub = parseSubscription(data);
      if (!sub.ok) return reply({ ok: false as const, error: sub.error });
      return reply({ ok: true as const, command: { kind: type, topic: sub.topic } });
    }
    default:
      return reply({
        ok: false as const,
        error: validation(`Unknown message type ${JSON.stringify(type).slice(0, 80)}`, `Expected one of ${KNOWN_TYPES.join(", ")}`),
      });
  }
}

/** One WebSocketMessage as text. `data` may be pre-serialized so broadcasts stringify once. */
export function encodePlain(type: string, dataJson: string, requestId?: string | number, timestamp = Date.now()): string {
  const rid = requestId !== undefined ? `,"requestId":${JSON.stringify(requestId)}` : "";
  return `{"type":${JSON.stringify(type)},"data":${dataJson},"timestamp":${timestamp}${rid}}`;
}

export const plainTopic = (topic: Topic) => `plain:${topic}`;

/** A plain WebSocket client. Bun keeps this object in ws.data. */
export class PlainConnection extends Connection implements SocketHandler {
  private ws?: HubSocket;

  constructor(id: string, private readonly ctx: ConnectionHost, remoteAddress?: string) {
    super(id, "plain", ctx, remoteAddress);
  }

  get transport(): "websocket" {
    return "websocket";
  }

  onOpen(ws: HubSocket): void {
    this.ws = ws;
  }

  onMessage(_ws: HubSocket, message: string | Buffer): void {
    const size = typeof message === "string" ? Buffer.byteLength(message) : message.byteLength;
    this.messagesIn++;
    this.bytesIn += size;
    this.ctx.countMessages(1);
    // Cheapest check first, so a flood costs one comparison per message.
    if (!this.admit()) return;
    if (size > this.ctx.options.maxMessageBytes) {
      return this.sendError(validation(`Message too large: ${size} bytes`, `The limit is ${this.ctx.options.maxMessageBytes} bytes`));
    }
    const parsed = parsePlainMessage(typeof message === "string" ? message : message.toString("utf8"));
    if (!parsed.ok) return this.sendError(parsed.error, parsed.requestId);
    const result = this.ctx.execute(this, parsed.command);
    if (!result.ok) return this.sendError(result.error, parsed.requestId);
    this.sendEvent(result.reply.type, result.reply.data, parsed.requestId);
    result.after?.();
  }

  onClose(): void {
    this.markClosed();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.ws?.close(code, reason);
    this.markClosed();
  }

  private resumeTimer?: ReturnType<typeof setTimeout>;

  protected override throttle(ms: number): void {
    if (this.resumeTimer || !this.ws) return;
    this.ws.pause();
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      if (!this.closed) this.ws?.resume();
    }, ms);
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.resumeTimer);
    this.ctx.onClosed(this);
  }

  sendEvent(type: string, data: unknown, requestId?: string | number): void {
    this.sendRaw(encodePlain(type, JSON.stringify(data ?? null), requestId));
  }

  private sendRaw(text: string): void {
    if (this.closed || !this.ws) return;
    // send() returns -1 when the text was queued behind backpressure and 0 when Bun dropped it
    // (over backpressureLimit); either way the buffered amount tells us whether to give up.
    const status = this.ws.send(text);
    this.messagesOut++;
    this.bytesOut += text.length;
    this.ctx.countMessages(1);
    if (status <= 0) this.checkBackpressure();
  }

  bindTopic(topic: Topic): void {
    this.ws?.subscribe(plainTopic(topic));
  }

  unbindTopic(topic: Topic): void {
    if (!this.closed) this.ws?.unsubscribe(plainTopic(topic));
  }

  deliverBroadcast(frames: BroadcastFrames): void {
    // Already sent by server.publish; only account for it.
    this.messagesOut++;
    this.bytesOut += frames.plain.length;
  }

  bufferedBytes(): number {
    return this.closed || !this.ws ? 0 : this.ws.getBufferedAmount();
  }
}
