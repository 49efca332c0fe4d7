/** @jsxImportSource hono/jsx */
import type { HistoryResponse } from "../../metrics/history";
import { formatNumber } from "../format";

export const RANGES = {
  "1h": { hours: 1, resolution: "1m", label: "1 hour" },
  "6h": { hours: 6, resolution: "5m", label: "6 hours" },
  "24h": { hours: 24, resolution: "15m", label: "24 hours" },
  "7d": { hours: 168, resolution: "1h", label: "7 days" },
} as const;
export type RangeKey = keyof typeof RANGES;

/** The body of GET /api/monitoring/history, as its route builds it (one type, not a copy). */
export type History = HistoryResponse;

export const CHARTS = [
  { id: "cpu", title: "CPU", unit: "%" },
  { id: "memory", title: "Memory", unit: "%" },
  { id: "gpu", title: "GPU utilization and VRAM", unit: "%" },
  { id: "requests", title: "Requests", unit: "per bucket" },
  { id: "responseTime", title: "Response time", unit: "ms" },
  { id: "tokensPerSecond", title: "Tokens per second", unit: "tok/s" },
] as const;

/**
 * The charts section for one range. The history is embedded as JSON (console.js draws it with
 * uPlot and appends live samples); the summary table is readable without JavaScript.
 */
export function Charts(props: { range: RangeKey; history?: History; error?: string }) {
  const r = RANGES[props.range];
  const h = props.history;
  return (
    <section id="charts" data-range={props.range} data-hours={String(r.hours)} data-resolution={r.resolution} aria-labelledby="charts-heading">
      <div class="toolbar" role="group" aria-label="Range">
        <h2 id="charts-heading" class="inline">Last {r.label}</h2>
        <span class="spacer"></span>
        {(Object.keys(RANGES) as RangeKey[]).map((k) => (
          <a
            class="btn"
            href={`/monitoring?range=${k}`}
            hx-get={`/ui/monitoring/charts?range=${k}`}
            hx-target="#charts"
            hx-swap="outerHTML"
            hx-push-url={`/monitoring?range=${k}`}
            aria-current={k === props.range ? "true" : undefined}
          >
            {k}
          </a>
        ))}
      </div>
      {props.error ? (
        <div class="callout" data-tone="error" role="alert">History is not available: {props.error}</div>
      ) : null}
      {h ? (
        <>
          {/* In an attribute, not a <script>: htmx drops script elements from swapped content
              when allowScriptTags is off. JSX escapes the attribute value. */}
          <div id="history-data" hidden data-history={JSON.stringify(h)}></div>
          <p class="muted small">
            {h.metrics.length} points at {h.period.resolution} resolution
            {h.metrics.length === 0 ? "; the collector writes one row per minute, so the charts fill as it runs" : ""}.
          </p>
          <div class="charts">
            {CHARTS.map((c) => (
              <figure class="card chart" data-chart={c.id}>
                <figcaption>
                  {c.title} <span class="muted small">{c.unit}</span>
                </figcaption>
                <div class="plot" id={`chart-${c.id}`}></div>
              </figure>
            ))}
          </div>
          <table class="summary card">
            <caption>Summary</caption>
            <tbody>
              <tr><th scope="row">CPU average / max</th><td>{formatNumber(h.summary.avgCpu)} % / {formatNumber(h.summary.maxCpu)} %</td></tr>
              <tr><th scope="row">Memory average / max</th><td>{formatNumber(h.summary.avgMemory)} % / {formatNumber(h.summary.maxMemory)} %</td></tr>
              <tr><th scope="row">Requests</th><td>{h.summary.totalRequests}</td></tr>
              <tr><th scope="row">Average response time</th><td>{formatNumber(h.summary.avgResponseTime)} ms</td></tr>
            </tbody>
          </table>
        </>
      ) : null}
    </section>
  );
}
