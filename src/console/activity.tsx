/** @jsxImportSource hono/jsx */
/**
 * The console's Activity page and its live-queue fragment (also shown on the dashboard): the
 * activity log with filters and per-model / per-key totals, a tokens/s chart per model (uPlot,
 * static/activity.js), and the requests queued, loading or in flight, each with a Cancel button.
 * Server-rendered; the live parts refresh as htmx fragments when the socket's `requests` and
 * `activity` topics say something changed (console.js turns them into lap-requests /
 * lap-activity events; while the socket is down it fires them every 5 s instead). No poll of
 * their own: a page with the socket up asks only when something changed.
 */
import { Hono, type Context } from "hono";
import { z } from "../zod";
import type { Capture, CapturedBody } from "../activity/captures";
import type { ActivityEntry, ActivityFilter, TotalsRow } from "../activity/log";
import type { LiveRequest } from "../activity/tracker";
import type { Services } from "../services";
import { Layout } from "./layout";
import { assetUrl } from "./assets";
import { formatDuration } from "./format";

const filterSchema = z.object({
  model: z.optional(z.string().check(z.trim(), z.maxLength(200))),
  key: z.optional(z.string().check(z.trim(), z.maxLength(100))),
  status: z.optional(z.enum(["", "2xx", "4xx", "5xx", "error"])),
  hours: z.optional(z.enum(["1", "6", "24", "168"])),
});
type Filter = z.infer<typeof filterSchema>;

const toActivityFilter = (f: Filter): ActivityFilter => ({
  ...(f.model ? { model: f.model } : {}),
  ...(f.key ? { key: f.key } : {}),
  ...(f.status ? { status: f.status as ActivityFilter["status"] } : {}),
  since: Date.now() - Number(f.hours ?? "24") * 3_600_000,
});

const ms = (v: number | null | undefined) => (v === null || v === undefined ? "" : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);
const num = (v: number | null | undefined) => (v === null || v === undefined ? "" : String(v));
const clockOf = (iso: string) => iso.slice(11, 19);

export function LiveQueue(props: { requests: LiveRequest[]; model?: string }) {
  const rows = props.requests;
  const qs = props.model ? `?model=${encodeURIComponent(props.model)}` : "";
  return (
    <section id="live-queue" class="card" aria-labelledby="queue-heading" hx-get={`/ui/requests/live${qs}`} hx-trigger="lap-requests from:body" hx-swap="outerHTML">
      <h2 id="queue-heading">Live requests <span class="muted" data-queue-count>{rows.length}</span></h2>
      {rows.length === 0 ? (
        <p class="muted">No request is queued, loading or running.</p>
      ) : (
        <div class="table-wrap">
          <table class="models">
            <thead>
              <tr><th>Id</th><th>Model</th><th>State</th><th class="num">Position</th><th class="num">Age</th><th class="num">Tokens</th><th>Client</th><th>Key</th><th></th></tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr data-request-id={r.id}>
                  <td><code>{r.id}</code></td>
                  <td>{r.model}</td>
                  <td><span class="badge" data-status={r.state === "running" ? "running" : "loading"}>{r.state}</span></td>
                  <td class="num">{r.position ?? ""}</td>
                  {/* Ticks every second in console.js (the queue is pushed only when it changes);
                      the same format as the ticker's, so a refresh does not flip it. */}
                  <td class="num" data-elapsed-since={r.since}>{formatDuration(r.ageMs / 1000)}</td>
                  <td class="num">{r.tokens}</td>
                  <td>{r.client ?? ""}</td>
                  <td>{r.key ?? ""}</td>
                  <td>
                    <form method="post" action={`/ui/requests/${encodeURIComponent(r.id)}/cancel`} hx-post={`/ui/requests/${encodeURIComponent(r.id)}/cancel${qs}`} hx-target="#live-queue" hx-swap="outerHTML">
                      <button class="btn danger" type="submit" aria-label={`Cancel request ${r.id}`}>Cancel</button>
                    </form>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Totals(props: { title: string; rows: TotalsRow[] }) {
  return (
    <div class="table-wrap">
      <table class="models" aria-label={props.title}>
        <thead>
          <tr><th>{props.title}</th><th class="num">Requests</th><th class="num">Errors</th><th class="num">Prompt</th><th class="num">Cached</th><th class="num">Completion</th><th class="num">Avg duration</th><th class="num">Avg TTFT</th><th class="num">Avg tok/s</th></tr>
        </thead>
        <tbody>
          {props.rows.map((t) => (
            <tr>
              <td>{t.name ?? <span class="muted">(none)</span>}</td>
              <td class="num">{t.requests}</td><td class="num">{t.errors}</td>
              <td class="num">{t.promptTokens}</td><td class="num">{t.cachedTokens}</td><td class="num">{t.completionTokens}</td>
              <td class="num">{ms(t.avgDurationMs)}</td><td class="num">{ms(t.avgTtftMs)}</td><td class="num">{num(t.avgGenTps)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** uPlot series: generation tokens/s per model over time (oldest first), as JSON for activity.js. */
export function chartData(entries: ActivityEntry[]): { models: string[]; points: [number, string, number][] } {
  const pts = entries.filter((e) => e.genTps !== null && e.model).map((e) => [Math.floor(Date.parse(e.time) / 1000), e.model!, e.genTps!] as [number, string, number]);
  pts.sort((a, b) => a[0] - b[0]);
  return { models: [...new Set(pts.map((p) => p[1]))], points: pts };
}

/** A DOM id for a request id (any of its characters, unique per id). */
const captureDomId = (requestId: string) => `capture-${Buffer.from(requestId).toString("hex")}`;

/**
 * The disclosure of a captured request: its bodies load when it is first opened. hx-preserve
 * keeps an opened one (and what it loaded) across the live refreshes of the table around it.
 */
function CaptureDisclosure(props: { requestId: string }) {
  const url = `/ui/activity/${encodeURIComponent(props.requestId)}/capture`;
  return (
    <details class="capture" id={captureDomId(props.requestId)} hx-preserve="true" hx-get={url} hx-trigger="toggle once" hx-target="find .capture-slot" hx-swap="innerHTML">
      <summary>Bodies</summary>
      <div class="capture-slot"><a href={url}>Show the captured bodies</a></div>
    </details>
  );
}

function BodyView(props: { title: string; body: CapturedBody }) {
  const b = props.body;
  return (
    <>
      <h4>{props.title} <span class="muted">{b.bytes} bytes{b.truncated ? `, ${b.keptBytes} kept (truncated)` : ""}{b.contentType ? `, ${b.contentType}` : ""}</span></h4>
      {/* Text children are escaped by hono/jsx: a body's markup is shown, never run. */}
      <pre>{b.text}</pre>
    </>
  );
}

export function CaptureView(props: { capture: Capture }) {
  const c = props.capture;
  return (
    <div class="capture-view" data-capture={c.requestId}>
      <p class="muted">
        {c.route} · {c.model ?? "no model"} · status {c.status ?? ""}{c.streamed ? " · streamed" : ""}{c.complete ? "" : " · incomplete (still running, or the client left)"}
      </p>
      <BodyView title="Request" body={c.request} />
      <BodyView title="Response" body={c.response} />
    </div>
  );
}

export function ActivityLive(props: { entries: ActivityEntry[]; summary: ReturnType<Services["activity"]["summary"]>; query: string; hasCapture?: (requestId: string) => boolean; hours?: string }) {
  const { entries, summary } = props;
  const hasCapture = props.hasCapture ?? (() => false);
  return (
    <div id="activity-live" hx-get={`/ui/activity/live${props.query}`} hx-trigger="lap-activity from:body" hx-swap="outerHTML">
      <section class="card" aria-labelledby="chart-heading">
        <h2 id="chart-heading">Generation speed per model (tokens/s)</h2>
        <div id="activity-chart" class="chart" data-hours={props.hours ?? "24"} data-chart={JSON.stringify(chartData(entries))}></div>
      </section>
      <section class="card" aria-labelledby="totals-heading">
        <h2 id="totals-heading">Totals <span class="muted">{summary.total.requests} requests, {summary.total.completionTokens} tokens generated</span></h2>
        <Totals title="Model" rows={summary.models} />
        <Totals title="API key" rows={summary.keys} />
      </section>
      <section class="card" aria-labelledby="log-heading">
        <h2 id="log-heading">Requests</h2>
        <div class="table-wrap">
          <table class="models" id="activity-table">
            <thead>
              <tr><th>Time</th><th>Model</th><th>Route</th><th class="num">Status</th><th class="num">Prompt</th><th class="num">Cached</th><th class="num">Completion</th><th class="num">Queued</th><th class="num">Loading</th><th class="num">TTFT</th><th class="num">Prompt tok/s</th><th class="num">Gen tok/s</th><th class="num">Duration</th><th>Key</th><th>Session</th><th>Client</th><th>Note</th></tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <>
                <tr data-request-id={e.requestId} data-status={e.status}>
                  <td title={e.time}>{clockOf(e.time)}</td>
                  <td>{e.model ?? ""}</td>
                  <td><code>{e.route}</code>{e.streaming ? <span class="muted"> stream</span> : null}</td>
                  <td class="num">{e.status}</td>
                  <td class="num">{num(e.promptTokens)}</td><td class="num">{num(e.cachedTokens)}</td><td class="num">{num(e.completionTokens)}</td>
                  <td class="num">{ms(e.queuedMs)}</td><td class="num">{ms(e.loadingMs)}</td><td class="num">{ms(e.ttftMs)}</td>
                  <td class="num">{num(e.promptTps)}</td><td class="num">{num(e.genTps)}</td><td class="num">{ms(e.durationMs)}</td>
                  <td>{e.keyName ?? ""}</td><td>{e.sessionId ?? ""}</td><td>{e.client ?? ""}</td>
                  <td>{e.error ?? ""}{e.rewritten.length ? <span class="muted"> rewritten: {e.rewritten.join(", ")}</span> : null}</td>
                </tr>
                {/* Its captured bodies, full width under the row (a cell would be too narrow). */}
                {e.requestId && hasCapture(e.requestId) ? (
                  <tr class="capture-row" data-capture-for={e.requestId}><td colspan={17}><CaptureDisclosure requestId={e.requestId} /></td></tr>
                ) : null}
                </>
              ))}
            </tbody>
          </table>
        </div>
        {entries.length === 0 ? <p class="muted">No requests in this range.</p> : null}
      </section>
    </div>
  );
}

function ActivityPage(props: { filter: Filter; models: string[]; live: LiveRequest[]; entries: ActivityEntry[]; summary: ReturnType<Services["activity"]["summary"]>; query: string; hasCapture: (requestId: string) => boolean; hours: string }) {
  const f = props.filter;
  return (
    <Layout title="Activity" active="activity" topics={["models", "requests", "activity"]} charts>
      <h1>Activity</h1>
      <LiveQueue requests={props.live} />
      <form class="card grid-form" method="get" action="/activity" aria-label="Filters">
        <label>Model
          <select name="model">
            <option value="">All</option>
            {props.models.map((m) => <option value={m} selected={f.model === m}>{m}</option>)}
          </select>
        </label>
        <label>Key <input name="key" value={f.key ?? ""} maxlength={100} /></label>
        <label>Status
          <select name="status">
            {["", "2xx", "4xx", "5xx", "error"].map((v) => <option value={v} selected={(f.status ?? "") === v}>{v || "All"}</option>)}
          </select>
        </label>
        <label>Range
          <select name="hours">
            {[["1", "1 h"], ["6", "6 h"], ["24", "24 h"], ["168", "7 d"]].map(([v, l]) => <option value={v} selected={(f.hours ?? "24") === v}>{l}</option>)}
          </select>
        </label>
        <button class="btn primary" type="submit">Apply</button>
        <a class="btn" href={`/api/activity/export?format=csv${props.query.replace(/^\?/, "&")}`}>Export CSV</a>
      </form>
      <ActivityLive entries={props.entries} summary={props.summary} query={props.query} hasCapture={props.hasCapture} hours={props.hours} />
      <script src={assetUrl("activity.js")} defer></script>
    </Layout>
  );
}

function queryOf(f: Filter): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

/** Mounted inside consoleRoutes (behind its login and the request guard). */
export function activityConsoleRoutes(s: Services) {
  const app = new Hono();
  const filterOf = (c: Context): Filter => {
    const parsed = filterSchema.safeParse(c.req.query());
    return parsed.success ? parsed.data : {};
  };
  const liveData = (f: Filter) => {
    const af = toActivityFilter(f);
    const { entries } = s.activity.query(af, 200);
    return { entries, summary: s.activity.summary(af.since!), hasCapture: (id: string) => s.captures.has(id), hours: f.hours ?? "24" };
  };
  const queueOf = (c: Context) => {
    const model = c.req.query("model")?.slice(0, 200) || undefined;
    return <LiveQueue requests={s.tracker.list({ model })} model={model} />;
  };

  app.get("/activity", (c) => {
    const f = filterOf(c);
    return c.html(<ActivityPage filter={f} models={s.registry.list().map((m) => m.id)} live={s.tracker.list()} {...liveData(f)} query={queryOf(f)} />);
  });
  app.get("/ui/activity/live", (c) => {
    const f = filterOf(c);
    return c.html(<ActivityLive {...liveData(f)} query={queryOf(f)} />);
  });
  app.get("/ui/requests/live", (c) => c.html(queueOf(c)));
  app.get("/ui/activity/:id/capture", (c) => {
    const capture = s.captures.get(c.req.param("id").slice(0, 128));
    const view = capture
      ? <CaptureView capture={capture} />
      : <p class="muted">{s.captures.enabled ? "Not captured any more: evicted to stay within captureMaxMB." : "Captures are off (captureMaxMB is 0)."}</p>;
    // Opened without htmx (no JavaScript): a page of its own.
    if (c.req.header("hx-request") !== "true") return c.html(<Layout title="Capture" active="activity" topics={[]}><h1>Capture</h1>{view}<p><a href="/activity">Back to Activity</a></p></Layout>, capture ? 200 : 404);
    return c.html(view);
  });
  app.post("/ui/requests/:id/cancel", (c) => {
    const id = c.req.param("id").slice(0, 128);
    if (s.tracker.cancel(id)) s.log.info(`Request ${id} cancelled from the console`);
    // Gone already is not an error here: the refreshed queue simply no longer lists it.
    if (c.req.header("hx-request") !== "true") return c.redirect("/activity", 303);
    return c.html(queueOf(c));
  });
  return app;
}
