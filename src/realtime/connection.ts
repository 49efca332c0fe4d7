import type { ClientCommand, ConnectionInfo, RealtimeError, RealtimeOptions, Topic } from "./types";

/** Frames of one broadcast, serialized once per protocol and shared by every recipient. */
export interface BroadcastFrames {
  plain: string;
  socketio: string;
}

/** What a command returns: the reply to send (then `after`, e.g. the current state) or an error. */
export type CommandResult =
  | { ok: true; reply: { type: string; data: unknown }; after?: () => void }
  | { ok: false; error: RealtimeError };

/**
 * What every connection, whatever its protocol, needs from the hub: the options (limits, heartbeat)
 * and four callbacks. Kept narrow so protocol code does not reach into the hub.
 */
export interface ConnectionHost {
  readonly options: RealtimeOptions;
  /** Counts messages for messages_per_second. */
  countMessages(n: number): void;
  warn(message: string): void;
  /** Runs a client command (subscribe, unsubscribe, ping). */
  execute(conn: Connection, command: ClientCommand): CommandResult;
  onClosed(conn: Connection): void;
}

/**
 * One client as the hub sees it, whatever its protocol: its subscriptions, counters and inbound
 * rate limit. The protocol subclasses know how to put an event on the wire.
 */
export abstract class Connection {
  readonly subscriptions = new Set<Topic>();
  readonly connectedAt = new Date().toISOString();
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Inbound messages dropped by the rate limit. */
  dropped = 0;
  closed = false;

  // Token bucket: `tokens` refills at rateLimitPerSecond up to rateLimitBurst.
  private tokens: number;
  private refilledAt = performance.now();
  private rateNoticeAt = -Infinity;
  private dropWindowStart = 0;
  private dropsInWindow = 0;

  constructor(
    readonly id: string,
    readonly protocol: "plain" | "socketio",
    protected readonly hub: ConnectionHost,
    readonly remoteAddress?: string,
  ) {
    this.tokens = hub.options.rateLimitBurst;
  }

  abstract get transport(): "websocket" | "polling";

  /** Sends one event to this client only. */
  abstract sendEvent(type: string, data: unknown, requestId?: string | number): void;

  /** Binds/unbinds the client's socket to the Bun pub/sub topic (no-op for HTTP long-polling). */
  abstract bindTopic(topic: Topic): void;
  abstract unbindTopic(topic: Topic): void;

  /**
   * Called for every subscriber after a broadcast was published to Bun's topics. WebSocket
   * clients already have it (Bun fanned it out natively); polling sessions queue it here.
   */
  abstract deliverBroadcast(frames: BroadcastFrames): void;

  /** Bytes queued for this client and not yet written to the network. */
  abstract bufferedBytes(): number;

  /** Closes the connection, telling the client why when the protocol allows. */
  abstract close(code: number, reason: string): void;

  sendError(error: RealtimeError, requestId?: string | number): void {
    this.sendEvent("error", error, requestId);
  }

  /**
   * Takes one token for an inbound message. When the bucket is empty the message is dropped and
   * the client hears RATE_LIMITED at most once per second, so a flood is never answered by a
   * flood of replies.
   */
  admit(): boolean {
    const now = performance.now();
    const rate = this.hub.options.rateLimitPerSecond;
    this.tokens = Math.min(this.hub.options.rateLimitBurst, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.dropped++;
    if (now - this.dropWindowStart > 10_000) {
      this.dropWindowStart = now;
      this.dropsInWindow = 0;
    }
    if (++this.dropsInWindow > this.hub.options.floodCloseDrops) {
      const reason = `Rate limit exceeded: ${this.dropsInWindow} messages dropped within 10 s`;
      this.hub.warn(`realtime: closing ${this.protocol}/${this.transport} client ${this.id}${this.remoteAddress ? ` (${this.remoteAddress})` : ""}: ${reason}`);
      this.close(1008, reason);
      return false;
    }
    const retryIn = Math.ceil(((1 - this.tokens) / rate) * 1000);
    if (now - this.rateNoticeAt >= 1000) {
      this.rateNoticeAt = now;
      this.sendError({ code: "RATE_LIMITED", message: `Too many messages; the limit is ${rate} per second`, retryIn });
    }
    this.throttle(retryIn);
    return false;
  }

  /**
   * Stops reading this client's socket until it may send again, so the rest of a flood waits in
   * the kernel (the client feels TCP backpressure) instead of costing us a callback per message.
   * Transports that cannot pause (HTTP polling) just drop.
   */
  protected throttle(_ms: number): void {}

  /** After anything was queued for this client: drop it if it stopped reading. */
  checkBackpressure(): boolean {
    const buffered = this.bufferedBytes();
    if (buffered <= this.hub.options.slowConsumerBytes) return true;
    const reason = `Slow consumer: ${buffered} bytes unsent (limit ${this.hub.options.slowConsumerBytes})`;
    this.hub.warn(`realtime: closing ${this.protocol}/${this.transport} client ${this.id}${this.remoteAddress ? ` (${this.remoteAddress})` : ""}: ${reason}`);
    this.close(1008, reason);
    return false;
  }

  info(): ConnectionInfo {
    return {
      id: this.id,
      protocol: this.protocol,
      transport: this.transport,
      connectedAt: this.connectedAt,
      subscriptions: [...this.subscriptions],
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      dropped: this.dropped,
      ...(this.remoteAddress ? { remoteAddress: this.remoteAddress } : {}),
    };
  }
}
