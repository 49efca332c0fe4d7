/** @jsxImportSource hono/jsx */
import type { DashboardData } from "../data";
import { clock, formatBytes, formatDuration, formatMB, formatNumber, sparklinePoints } from "../format";
import type { RecentPoint } from "../recent";
import { Pill, StatusBadge } from "./badge";
import { PeersSection, RpcWorkersSection } from "./peers";

function Sparkline(props: { values: number[]; max?: number; label: string }) {
  const points = sparklinePoints(props.values, 120, 32, props.max);
  if (!points) return <svg class="spark" viewBox="0 0 120 32" aria-hidden="true"></svg>;
  return (
    <svg class="spark" viewBox="0 0 120 32" preserveAspectRatio="none" role="img" aria-label={`${props.label}, last ${props.values.length} samples`}>
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke" />
    </svg>
  );
}

function Tile(props: { id: string; label: string; value: string; sub?: string; series?: number[]; max?: number; meter?: number }) {
  return (
    <div class="tile" id={`tile-${props.id}`}>
      <div class="tile-label">{props.label}</div>
      <div class="tile-value" data-metric={props.id}>{props.value}</div>
      {props.sub ? <div class="tile-sub muted">{props.sub}</div> : null}
      {props.meter !== undefined ? (
        <meter min={0} max={100} low={70} high={90} optimum={0} value={props.meter} aria-label={props.label}></meter>
      ) : null}
      {props.series ? <Sparkline values={props.series} max={props.max} label={props.label} /> : null}
    </div>
  );
}

const series = (pts: RecentPoint[], f: (p: RecentPoint) => number | undefined) =>
  pts.map(f).filter((x): x is number => x !== undefined);

/** Request rate per sample interval, from the cumulative totals. */
function rateSeries(pts: RecentPoint[]): number[] {
  const out: number[] = [];
  for (let i = 1; i < pts.length; i++) {
    const dt = (pts[i]!.t - pts[i - 1]!.t) / 60000;
    out.push(dt > 0 ? Math.max(0, (pts[i]!.requestsTotal - pts[i - 1]!.requestsTotal) / dt) : 0);
  }
  return out;
}

/**
 * Everything live on the dashboard. The page renders it; /ui/dashboard returns it again when a
 * metrics_update or models_update arrives (console.js turns those into lap-* events).
 */
export function DashboardLive(props: { d: DashboardData }) {
  const { d } = props;
  const st = d.status;
  const m = d.metrics;
  const pts = d.recent;
  const gpus = m.gpu ?? [];
  const active = d.models.filter((x) => x.status === "running" || x.status === "loading" || x.status === "error");
  return (
    <div id="dashboard-live" hx-get="/ui/dashboard" hx-trigger="lap-metrics from:body, lap-models from:body" hx-swap="outerHTML">
      <section class="card" aria-labelledby="status-heading">
        <h2 id="status-heading">Status</h2>
        <dl class="status-grid">
          <div>
            <dt>Proxy</dt>
            <dd>
              <Pill tone="ok">running</Pill> v{st.application.version}, up {formatDuration(st.application.uptime)}
            </dd>
          </div>
          <div>
            <dt>llama-server</dt>
            <dd>
              {d.llamaServer.found ? <Pill tone="ok">found</Pill> : <Pill tone="bad">not found</Pill>}{" "}
              <span class={d.llamaServer.found ? "path muted" : "reason"}>{d.llamaServer.found ? d.llamaServer.path : d.llamaServer.reason}</span>
              {!d.llamaServer.found ? <> <a href="/settings">Set its path</a></> : null}
            </dd>
          </div>
          <div>
            <dt>Configuration</dt>
            <dd>{d.configError ? <><Pill tone="bad">invalid</Pill> <span class="muted">{d.configError}</span></> : <Pill tone="ok">ok</Pill>}</dd>
          </div>
          <div>
            <dt>Models</dt>
            <dd class="counts">
              <span><strong data-count="loaded">{st.models.loaded}</strong> loaded</span>
              <span><strong data-count="loading">{st.models.loading}</strong> loading</span>
              <span><strong data-count="failed">{st.models.failed}</strong> failed</span>
              <span><strong data-count="registered">{st.models.registered}</strong> registered</span>
            </dd>
          </div>
        </dl>
        {active.length ? (
          <ul class="active-models">
            {active.map((x) => (
              <li>
                <StatusBadge status={x.status} detail={x.statusDetail} /> <a href="/models">{x.name}</a>
                {x.status === "loading" && x.stage ? <span class="muted"> {x.stage}</span> : null}
                {x.memoryUsage ? <span class="muted"> {formatMB(x.memoryUsage)}</span> : null}
              </li>
            ))}
          </ul>
        ) : (
          <p class="muted">
            No model is running. <a href="/models">Start one on the Models page.</a>
          </p>
        )}
      </section>

      <section class="card" aria-labelledby="system-heading">
        <h2 id="system-heading">
          System <span class="muted small">{d.sampledAt ? `sampled ${clock(d.sampledAt)} UTC` : "read now (collector not running)"}</span>
        </h2>
        <div class="tiles">
          <Tile id="cpu" label="CPU" value={`${formatNumber(m.cpu.usage)} %`} sub={`${m.cpu.cores} cores, load ${m.cpu.loadAverage.join(" / ")}`} meter={m.cpu.usage} series={series(pts, (p) => p.cpu)} max={100} />
          <Tile id="memory" label="Memory" value={`${formatNumber(m.memory.usagePercent)} %`} sub={`${formatMB(m.memory.used)} of ${formatMB(m.memory.total)}`} meter={m.memory.usagePercent} series={series(pts, (p) => p.memory)} max={100} />
          <Tile id="disk" label="Disk" value={`${formatNumber(m.disk.usagePercent)} %`} sub={`${formatBytes(m.disk.free)} free`} meter={m.disk.usagePercent} series={series(pts, (p) => p.disk)} max={100} />
          {gpus.length === 0 ? (
            <div class="tile" id="tile-gpu">
              <div class="tile-label">GPU</div>
              <div class="tile-value muted">none</div>
              <div class="tile-sub muted">No NVIDIA GPU detected</div>
            </div>
          ) : (
            gpus.map((g) => (
              <>
                <Tile id={`gpu${g.id}`} label={`GPU ${g.id} utilization`} value={`${formatNumber(g.utilization)} %`} sub={g.name} meter={g.utilization} series={gpus.length === 1 ? series(pts, (p) => p.gpuUtil) : undefined} max={100} />
                <Tile id={`vram${g.id}`} label={`GPU ${g.id} VRAM`} value={`${formatNumber(g.memory.usagePercent)} %`} sub={`${formatMB(g.memory.used)} of ${formatMB(g.memory.total)}`} meter={g.memory.usagePercent} series={gpus.length === 1 ? series(pts, (p) => p.gpuMem) : undefined} max={100} />
                <Tile id={`temp${g.id}`} label={`GPU ${g.id} temperature`} value={g.temperature !== undefined ? `${formatNumber(g.temperature, 0)} °C` : "–"} series={gpus.length === 1 ? series(pts, (p) => p.gpuTemp) : undefined} />
              </>
            ))
          )}
        </div>
      </section>

      <section class="card" aria-labelledby="requests-heading">
        <h2 id="requests-heading">Requests</h2>
        <div class="tiles">
          <Tile id="rate" label="Request rate" value={`${formatNumber(d.requestsPerMinute)} /min`} sub={`${st.performance.requests_total} total, ${st.performance.requests_active} active`} series={rateSeries(pts)} />
          <Tile id="latency" label="Average response time" value={`${Math.round(d.averageResponseTime)} ms`} sub={`error rate ${formatNumber(st.performance.error_rate * 100)} %`} series={series(pts, (p) => p.averageResponseTime)} />
          <Tile id="tps" label="Tokens per second" value={formatNumber(d.tokensPerSecond)} sub="generation, all models" series={series(pts, (p) => p.tokensPerSecond)} />
        </div>
      </section>

      <PeersSection peers={d.peers} />
      <RpcWorkersSection workers={d.rpcWorkers} />
    </div>
  );
}
