import type { Connection } from "./connection";

/** The hub's statistics, as GET /api/status reports them under `websocket`. */
export interface RealtimeStats {
  connected_clients: number;
  active_connections: number;
  messages_per_second: number;
}

/** messages_per_second is averaged over this many seconds. */
const RATE_WINDOW_S = 10;

/**
 * Messages in and out per second, over a sliding window of one-second buckets (a ring indexed
 * by the epoch second): counting is O(1), and no timer runs to age the buckets.
 */
export class MessageRate {
  private buckets = new Array<number>(RATE_WINDOW_S).fill(0);
  private second = Math.floor(Date.now() / 1000);
  private since = Date.now();

  /** The window starts again from now (when the hub starts serving). */
  restart(): void {
    this.since = Date.now();
  }

  count(n: number): void {
    const second = this.advance();
    this.buckets[second % RATE_WINDOW_S]! += n;
  }

  private advance(): number {
    const second = Math.floor(Date.now() / 1000);
    if (second - this.second >= RATE_WINDOW_S) this.buckets.fill(0);
    else for (let s = this.second + 1; s <= second; s++) this.buckets[s % RATE_WINDOW_S] = 0;
    if (second > this.second) this.second = second;
    return second;
  }

  perSecond(): number {
    this.advance();
    const total = this.buckets.reduce((a, b) => a + b, 0);
    // Over the window, or over the time since start when that is shorter (at least 1 s).
    const elapsed = Math.max(1, Math.min(RATE_WINDOW_S, (Date.now() - this.since) / 1000));
    return Math.round((total / elapsed) * 10) / 10;
  }
}

/** connected_clients, active_connections (subscribed to anything) and messages_per_second. */
export function realtimeStats(connections: ReadonlySet<Connection>, rate: MessageRate): RealtimeStats {
  let active = 0;
  for (const c of connections) if (c.subscriptions.size > 0) active++;
  return {
    connected_clients: connections.size,
    active_connections: active,
    messages_per_second: rate.perSecond(),
  };
}
