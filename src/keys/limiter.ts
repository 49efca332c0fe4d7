/**
 * Per-key limits (requestsPerMinute: a sliding 60 s window; tokensPerDay: prompt + completion
 * tokens since 00:00 UTC) and the per-key counters /metrics shows. The one owner of that state.
 * Tokens are learnt from the activity log's batches ("activity.recorded"), so a request that is
 * still running counts once it ends; the day's total is seeded from the activity table the first
 * time a key is seen that day (a restart does not reset a budget).
 */
import type { EventBus } from "../events";
import type { NamedKey } from "./keys";

export type LimitDecision = { ok: true } | { ok: false; retryAfterSeconds: number; message: string };

const DAY_MS = 86_400_000;
export const utcDayStart = (now: number) => now - (now % DAY_MS);

/** Pure: may one more request go, given the key's limits, its recent request times and today's tokens? */
export function decideLimit(
  key: Pick<NamedKey, "name" | "requestsPerMinute" | "tokensPerDay">,
  state: { recent: readonly number[]; tokensToday: number },
  now: number,
): LimitDecision {
  if (key.tokensPerDay !== undefined && state.tokensToday >= key.tokensPerDay) {
    return {
      ok: false,
      retryAfterSeconds: Math.max(1, Math.ceil((utcDayStart(now) + DAY_MS - now) / 1000)),
      message: `Key ${key.name} used its ${key.tokensPerDay} tokens for today (UTC)`,
    };
  }
  if (key.requestsPerMinute !== undefined) {
    const inWindow = state.recent.filter((t) => t > now - 60_000);
    if (inWindow.length >= key.requestsPerMinute) {
      return {
        ok: false,
        retryAfterSeconds: Math.max(1, Math.ceil((inWindow[0]! + 60_000 - now) / 1000)),
        message: `Key ${key.name} is limited to ${key.requestsPerMinute} requests per minute`,
      };
    }
  }
  return { ok: true };
}

export interface KeyCounters {
  requests: number;
  limited: number;
  promptTokens: number;
  completionTokens: number;
}

export class KeyLimiter {
  private readonly recent = new Map<string, number[]>();
  private readonly today = new Map<string, { day: number; tokens: number }>();
  readonly counters = new Map<string, KeyCounters>();

  constructor(
    bus: EventBus,
    /** Tokens the key used since `sinceMs`, from the activity table. */
    private readonly tokensSince: (keyName: string, sinceMs: number) => number,
    private readonly now: () => number = Date.now,
  ) {
    bus.on("activity.recorded", ({ entries }) => {
      for (const e of entries) {
        if (!e.keyName) continue;
        const c = this.counter(e.keyName);
        c.promptTokens += e.promptTokens ?? 0;
        c.completionTokens += e.completionTokens ?? 0;
        const t = this.today.get(e.keyName);
        if (t && Date.parse(e.time) >= t.day) t.tokens += (e.promptTokens ?? 0) + (e.completionTokens ?? 0);
      }
    });
  }

  private counter(name: string): KeyCounters {
    let c = this.counters.get(name);
    if (!c) this.counters.set(name, (c = { requests: 0, limited: 0, promptTokens: 0, completionTokens: 0 }));
    return c;
  }

  /** Checks the key's limits and, when it may go, counts the request. */
  admit(key: NamedKey): LimitDecision {
    const now = this.now();
    const day = utcDayStart(now);
    let t = this.today.get(key.name);
    if (key.tokensPerDay !== undefined && (!t || t.day !== day)) {
      t = { day, tokens: this.tokensSince(key.name, day) };
      this.today.set(key.name, t);
    }
    const recent = (this.recent.get(key.name) ?? []).filter((x) => x > now - 60_000);
    const decision = decideLimit(key, { recent, tokensToday: t?.tokens ?? 0 }, now);
    const c = this.counter(key.name);
    if (!decision.ok) {
      c.limited++;
      this.recent.set(key.name, recent);
      return decision;
    }
    c.requests++;
    if (key.requestsPerMinute !== undefined) recent.push(now);
    this.recent.set(key.name, recent);
    return decision;
  }
}
