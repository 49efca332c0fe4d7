/**
 * `keep_alive` as Ollama reads it (api/types.go Duration.UnmarshalJSON): a number is seconds, a
 * string is a Go duration ("5m", "1h30m", "300ms", "0"); anything negative means "keep loaded".
 * We also take a bare numeric string ("300", "-1") as seconds, which Go would refuse, because
 * users write it so in configuration files of Ollama clients.
 */

/** Seconds the model stays loaded after the request; Infinity = until stopped by hand. */
export type KeepAlive = number;

export class DurationError extends Error {
  override name = "DurationError";
}

const UNIT_SECONDS: Record<string, number> = {
  ns: 1e-9,
  us: 1e-6,
  "µs": 1e-6,
  "μs": 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
};

/** Go's time.ParseDuration grammar: [-+]? then one or more <decimal><unit>; "0" alone is allowed. */
export function parseGoDuration(text: string): number {
  const s = text.trim();
  if (s === "0" || s === "+0" || s === "-0") return 0;
  const m = /^([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(s);
  if (!m) throw new DurationError(`time: invalid duration "${text}"`);
  const sign = m[1] === "-" ? -1 : 1;
  let seconds = 0;
  for (const part of s.slice(m[1]!.length).matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    seconds += Number(part[1]) * UNIT_SECONDS[part[2]!]!;
  }
  return sign * seconds;
}

/**
 * Reads a request's keep_alive: undefined when absent (the model's configured idle TTL applies),
 * else seconds (Infinity for negative values). Throws DurationError for anything else.
 */
export function parseKeepAlive(value: unknown): KeepAlive | undefined {
  if (value === undefined || value === null) return undefined;
  let seconds: number;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new DurationError(`keep_alive must be a finite number, not ${value}`);
    seconds = value;
  } else if (typeof value === "string") {
    seconds = /^\s*[-+]?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : parseGoDuration(value);
  } else {
    throw new DurationError(`Unsupported type: '${Array.isArray(value) ? "array" : typeof value}'`);
  }
  return seconds < 0 ? Infinity : seconds;
}

/** Durations in Ollama's answers are integer nanoseconds. */
export const msToNs = (ms: number): number => Math.max(0, Math.round(ms * 1e6));

/** The pool's keep-alive (supervisor/pool.ts AcquireOptions): -1 = keep loaded, else seconds. */
export const poolKeepAlive = (k: KeepAlive | undefined): number | undefined => (k === undefined ? undefined : Number.isFinite(k) ? k : -1);
