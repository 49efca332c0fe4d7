import type { KeyCounters } from "./limiter";

/** Prometheus text for the per-key counters and the activity writer (appended to GET /metrics). */
export function renderKeyMetrics(counters: ReadonlyMap<string, KeyCounters>, activity: { written: number; dropped: number }): string {
  const lines: string[] = [];
  const family = (name: string, help: string, rows: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const [labels, v] of rows) lines.push(`${name}${labels} ${v}`);
  };
  // Key names are [A-Za-z0-9._-] (KEY_NAME_RE): nothing to escape in a label value.
  const keys = [...counters.entries()].sort(([a], [b]) => a.localeCompare(b));
  family("lap_key_requests_total", "Requests admitted per named API key.", keys.map(([k, c]) => [`{key="${k}"}`, c.requests]));
  family("lap_key_limited_total", "Requests refused by a named key's limits (429).", keys.map(([k, c]) => [`{key="${k}"}`, c.limited]));
  family("lap_key_tokens_total", "Tokens per named API key (prompt, completion).", keys.flatMap(([k, c]) => [[`{key="${k}",kind="prompt"}`, c.promptTokens], [`{key="${k}",kind="completion"}`, c.completionTokens]] as [string, number][]));
  family("lap_activity_rows_written_total", "Activity log rows written to SQLite.", [["", activity.written]]);
  family("lap_activity_rows_dropped_total", "Activity log rows dropped because the writer fell behind.", [["", activity.dropped]]);
  return lines.join("\n") + "\n";
}
