/** Pure pieces of the activity log and the live queue, tested as tables. */
import type { NewActivityRow } from "../db/schema";
import type { RequestOutcome } from "../proxy/stats";

/** What an incoming X-Request-Id may look like to be honoured (else the proxy makes one). */
export const REQUEST_ID_RE = /^[A-Za-z0-9._:@+=-]{1,128}$/;

export function acceptRequestId(incoming: string | null | undefined): string | null {
  const v = incoming?.trim();
  return v && REQUEST_ID_RE.test(v) ? v : null;
}

/** Parses "X-Session-ID, X-Litellm-Session-Id" into header names (empty entries dropped). */
export function sessionHeaderNames(setting: string): string[] {
  return setting.split(",").map((s) => s.trim()).filter(Boolean);
}

/** The first non-empty value of `names` in `headers`, trimmed and cut to 200 characters. */
export function sessionIdOf(headers: Headers, names: string[]): string | null {
  for (const n of names) {
    const v = headers.get(n)?.trim();
    if (v) return v.slice(0, 200);
  }
  return null;
}

/** How a finished request went, as the relay reports it. */
export type FinishedOutcome = RequestOutcome;

/** What the tracker knew about the request while it lived. */
export interface TrackedFacts {
  requestId: string;
  /** Epoch ms of arrival. */
  ts: number;
  model: string | null;
  route: string;
  client: string | null;
  keyName: string | null;
  sessionId: string | null;
  streaming: boolean;
  /** The model was not running when the request arrived: its wait was a load. */
  waitedForLoad: boolean;
  /** ms from arrival to a slot (undefined: never got one). */
  waitMs?: number;
  durationMs: number;
  rewritten: string[];
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const finite = (n: number | undefined): n is number => n !== undefined && Number.isFinite(n) && n >= 0;

/** One activity row from what the tracker saw and what the relay reported. */
export function activityRow(f: TrackedFacts, o: FinishedOutcome): NewActivityRow {
  const wait = f.waitMs ?? f.durationMs;
  const genTps = finite(o.predictedPerSecond)
    ? o.predictedPerSecond
    : o.completionTokens && o.generationMs ? (o.completionTokens / o.generationMs) * 1000 : undefined;
  const isError = o.error ?? o.status >= 400;
  return {
    requestId: f.requestId,
    ts: f.ts,
    model: f.model,
    route: f.route,
    status: o.status,
    client: f.client,
    keyName: f.keyName,
    sessionId: f.sessionId,
    streaming: f.streaming,
    promptTokens: o.promptTokens ?? null,
    cachedTokens: o.cachedTokens ?? null,
    completionTokens: o.completionTokens ?? null,
    queuedMs: f.waitedForLoad ? 0 : Math.round(wait),
    loadingMs: f.waitedForLoad ? Math.round(wait) : 0,
    ttftMs: finite(o.ttftMs) ? Math.round(o.ttftMs) : null,
    promptTps: finite(o.promptPerSecond) ? round1(o.promptPerSecond) : null,
    genTps: finite(genTps) ? round1(genTps) : null,
    durationMs: Math.round(f.durationMs),
    // A 499 (client gone, or cancelled by an operator) is not a failure but says why it ended.
    error: isError ? (o.message ?? `HTTP ${o.status}`).slice(0, 500) : o.status === 499 && o.message ? o.message.slice(0, 500) : null,
    rewritten: f.rewritten.length ? f.rewritten.join(",").slice(0, 500) : null,
  };
}
