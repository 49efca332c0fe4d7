/**
 * Where a request for a model that lives on several hosts goes. A pure decision (no I/O, no
 * clock): the peer registry and the proxy gather the facts, this orders the hosts, and the
 * caller tries them in that order (the next one only when the previous failed before anything
 * reached the client).
 */

/** One host that has the requested model. */
export interface RouteCandidate {
  /** "local" is this instance; otherwise the peer's configured name. */
  host: string;
  kind: "local" | "peer";
  /** The model runs there right now (no load to wait for). Unknown counts as not running. */
  running: boolean;
  /** Requests in flight to that host for this model (peers: the ones we sent). */
  inFlight: number;
  /** Configured peer priority (higher first); local counts as 0. */
  priority: number;
  /** A peer that failed recently (back-off) or failed its last health check is not a candidate. */
  available: boolean;
}

/**
 * Orders the candidates, best first, leaving out the unavailable ones: the host that already runs
 * the model, then the least loaded, then the higher priority; on a full tie this instance (no
 * network hop), then the peer name, so the choice is stable.
 */
export function orderRoutes(candidates: readonly RouteCandidate[]): RouteCandidate[] {
  return candidates
    .filter((c) => c.available)
    .sort(
      (a, b) =>
        Number(b.running) - Number(a.running) ||
        a.inFlight - b.inFlight ||
        b.priority - a.priority ||
        Number(b.kind === "local") - Number(a.kind === "local") ||
        a.host.localeCompare(b.host),
    );
}

/** Back-off after `failures` failures in a row: base doubling up to max (ms). */
export function backoffMs(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30));
}
