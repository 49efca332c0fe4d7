/** @jsxImportSource hono/jsx */
import type { ModelView, ModelQueue } from "../data";
import type { FieldErrors, FormValues } from "../forms";
import type { FitAnswer } from "../../supervisor/pool";
import { formatDuration, formatGB, formatMB } from "../format";
import { StatusBadge } from "./badge";
import { GridFieldError, invalidAttrs } from "./fields";
import { KvCacheList } from "./kv-cache";

export interface Notice {
  tone: "ok" | "error";
  text: string;
  details?: string;
}

export function NoticeBox(props: { notice?: Notice | null }) {
  const n = props.notice;
  if (!n) return null;
  return (
    <div class="callout" data-tone={n.tone} role={n.tone === "error" ? "alert" : "status"}>
      <strong>{n.text}</strong>
      {n.details ? <div class="details">{n.details}</div> : null}
    </div>
  );
}

const canStart = (m: ModelView) => m.status === "stopped" || m.status === "error" || m.status === "discovered";
const canStop = (m: ModelView) => m.status === "running" || m.status === "loading";

/** MiB/GiB for memory figures (binary units, as llama-server and nvidia-smi print them). */
export function formatMemory(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes) || bytes <= 0) return "–";
  const mib = bytes / 1048576;
  return mib >= 1024 ? `${(mib / 1024).toFixed(1)} GiB` : `${mib >= 10 ? Math.round(mib) : mib.toFixed(1)} MiB`;
}

/**
 * Whether the model would start now, where, and what it would stop (GET /api/models/:id/fit).
 * /ui/models/:id/fit returns it; the row asks for it when it scrolls into view, the settings
 * editor whenever the context or GPU layers change.
 */
export function FitHint(props: { fit: FitAnswer | null; error?: string }) {
  const f = props.fit;
  if (!f) return <span class="fit muted small" data-fit="unknown">{props.error ?? "–"}</span>;
  // Over RPC workers: "fits over w1 + local GPU 0", and which of its workers were not counted.
  const remote = !!f.placement?.workers?.length;
  const where = remote ? (f.where ?? "") : f.placement?.gpus.length ? `GPU ${f.placement.gpus.join("+")}` : f.placement ? "CPU" : "";
  const uncounted = (f.rpcWorkers ?? []).filter((w) => !w.counted).map((w) => w.name);
  const text = !f.fits
    ? `does not fit: ${f.reason}`
    : `fits${where ? ` ${remote ? "over" : "on"} ${where}` : ""}${f.evict.length ? `, stops ${f.evict.join(", ")}` : ""}${uncounted.length ? ` (${uncounted.join(", ")} not counted)` : ""}`;
  return (
    <span class={`fit small ${f.fits ? "" : "field-error"}`} data-fit={f.fits ? (f.evict.length ? "evicts" : "fits") : "no"} title={f.reason}>
      {text}
      {f.maxContextSize ? <span class="muted"> · max context {f.maxContextSize.toLocaleString("en-US")}</span> : null}
    </span>
  );
}

/** Need (estimate) vs. measured (llama-server's report), and where it runs. */
function MemoryCell(props: { m: ModelView }) {
  const mem = props.m.memory;
  const p = props.m.placement;
  return (
    <div class="memory" data-memory>
      <div title="estimated from the GGUF header for these settings">need {formatMemory(mem?.estimatedBytes)}</div>
      {mem?.measuredBytes ? <div class="muted small" title={`llama-server's own report, ${mem.measuredAt ?? ""}`}>measured {formatMemory(mem.measuredBytes)}</div> : null}
      {p ? (
        <div class="muted small" data-placement>
          {p.workers?.length
            ? `over ${p.workers.join(" + ")}${p.gpus.length ? ` + GPU ${p.gpus.join("+")}` : ""}`
            : p.gpus.length
              ? `on GPU ${p.gpus.join("+")}${p.tensorSplit ? ` (split ${p.tensorSplit.join(":")})` : ""}`
              : "on CPU"}
          {p.partial ? ", partial" : ""}
        </div>
      ) : null}
      {props.m.memoryUsage != null ? <div class="muted small">using {formatMB(props.m.memoryUsage)}</div> : null}
    </div>
  );
}

function Actions(props: { m: ModelView }) {
  const { m } = props;
  const id = encodeURIComponent(m.id);
  return (
    <div class="actions">
      {canStart(m) ? (
        <form method="post" action={`/ui/models/${id}/start`} hx-post={`/ui/models/${id}/start`} hx-target="#models-table" hx-swap="outerHTML">
          <button type="submit" class="btn primary" data-action="start" aria-label={`Start ${m.name}`} disabled={m.missing}>
            Start
          </button>
          <span hx-get={`/ui/models/${id}/fit`} hx-trigger="revealed" hx-target="this" hx-swap="outerHTML" class="fit muted small" data-fit="pending"></span>
        </form>
      ) : null}
      {canStop(m) ? (
        <form method="post" action={`/ui/models/${id}/stop`} hx-post={`/ui/models/${id}/stop`} hx-target="#models-table" hx-swap="outerHTML">
          <button type="submit" class="btn" data-action="stop" aria-label={`Stop ${m.name}`}>
            Stop
          </button>
        </form>
      ) : null}
      <form
        method="post"
        action={`/ui/models/${id}/delete`}
        hx-post={`/ui/models/${id}/delete`}
        hx-target="#models-table"
        hx-swap="outerHTML"
        hx-confirm={`Remove ${m.name} from the registry? The file on disk is not deleted.`}
        hx-vals='{"confirmed":"1"}'
      >
        <button type="submit" class="btn danger" data-action="delete" aria-label={`Remove ${m.name}`} disabled={canStop(m)}>
          Remove
        </button>
      </form>
    </div>
  );
}

function Progress(props: { m: ModelView; now: number }) {
  const since = props.m.loadingSince ? Date.parse(props.m.loadingSince) : NaN;
  const elapsed = Number.isFinite(since) ? formatDuration((props.now - since) / 1000) : null;
  return (
    <div class="progress" role="status">
      <span class="bar" aria-hidden="true"><span></span></span>
      <span>
        {props.m.stage ?? "starting"}
        {elapsed ? <>, <span data-elapsed-since={props.m.loadingSince}>{elapsed}</span></> : null}
      </span>
    </div>
  );
}

function ErrorDetails(props: { m: ModelView }) {
  const e = props.m.error;
  if (!e) return null;
  const exit = e.exitCode != null ? ` (exit code ${e.exitCode})` : e.signal ? ` (signal ${e.signal})` : "";
  return (
    <div class="model-error" role="alert">
      <strong>Start failed{exit}:</strong> {e.message}
      {e.logTail?.length ? (
        <details open>
          <summary>Last log lines</summary>
          <pre class="log-tail">{e.logTail.join("\n")}</pre>
        </details>
      ) : null}
    </div>
  );
}

/** The editor's fields as the saved settings show them (an empty field = the global value). */
export function settingsToForm(st: ModelView["settings"]): FormValues {
  const st2 = st ?? {};
  const num = (v: number | undefined) => (v === undefined ? "" : String(v));
  const json = (v: Record<string, unknown> | undefined) => (v && Object.keys(v).length ? JSON.stringify(v) : "");
  return {
    ctxSize: num(st2.ctxSize),
    batchSize: num(st2.batchSize),
    threads: num(st2.threads),
    gpuLayers: num(st2.gpuLayers),
    idleTimeoutSeconds: num(st2.idleTimeoutSeconds),
    aliases: (st2.aliases ?? []).join(", "),
    extraArgs: (st2.extraArgs ?? []).join("\n"),
    rpc: st2.rpc === "all" ? "all" : (st2.rpc ?? []).join(", "),
    tensorSplit: (st2.tensorSplit ?? []).join(", "),
    ...(st2.autoStart === true ? { autoStart: "1" } : {}),
    ...(st2.kvCache !== false ? { kvCache: "1" } : {}),
    defaults: json(st2.rewrite?.defaults),
    overrides: json(st2.rewrite?.overrides),
    strip: (st2.rewrite?.strip ?? []).join(", "),
  };
}

function SettingsEditor(props: { m: ModelView; state?: RowState }) {
  const state = props.state ?? {};
  // After a refused save the fields show what was typed, not what is saved.
  const v = state.values ?? settingsToForm(props.m.settings);
  const errors = state.fieldErrors ?? {};
  const id = encodeURIComponent(props.m.id);
  const f = (name: string) => `ms-${props.m.id}-${name}`;
  // Each field's error attributes, and its message on the next grid row (partials/fields.tsx).
  const prefix = `ms-${props.m.id}`;
  const invalid = (name: string, hint?: string) => invalidAttrs(prefix, name, errors, hint ? f(hint) : undefined);
  const FieldError = (p: { name: string }) => <GridFieldError prefix={prefix} name={p.name} errors={errors} />;
  // Context and GPU layers both re-ask /fit as they are typed (the hint beside them).
  const fitOnInput = {
    "hx-get": `/ui/models/${id}/fit`,
    "hx-trigger": "input changed delay:300ms",
    "hx-include": "closest form",
    "hx-params": "ctxSize,gpuLayers",
    "hx-target": `#${f("fit")}`,
    "hx-swap": "innerHTML",
  };
  const count = Object.keys(errors).length;
  return (
    <details class="settings-editor" open={!!(state.settingsError || count || state.settingsSaved)}>
      <summary>Settings</summary>
      <form
        method="post"
        action={`/ui/models/${id}/settings`}
        hx-post={`/ui/models/${id}/settings`}
        hx-target="#models-table"
        hx-swap="outerHTML"
        class="grid-form compact"
        novalidate
      >
        <p class="hint">Empty fields use the global settings.</p>
        <label for={f("ctx")}>Context size</label>
        <input id={f("ctx")} name="ctxSize" inputmode="numeric" value={v.ctxSize ?? ""} {...invalid("ctxSize")} {...fitOnInput} />
        <FieldError name="ctxSize" />
        <span></span>
        <output id={f("fit")} for={f("ctx")} aria-live="polite" hx-get={`/ui/models/${id}/fit`} hx-trigger="toggle from:closest details" hx-target="this" hx-include="closest form" hx-params="ctxSize,gpuLayers" hx-swap="innerHTML"></output>
        <label for={f("batch")}>Batch size</label>
        <input id={f("batch")} name="batchSize" inputmode="numeric" value={v.batchSize ?? ""} {...invalid("batchSize")} />
        <FieldError name="batchSize" />
        <label for={f("threads")}>Threads</label>
        <input id={f("threads")} name="threads" inputmode="numeric" value={v.threads ?? ""} {...invalid("threads")} />
        <FieldError name="threads" />
        <label for={f("gpu")}>GPU layers</label>
        <input id={f("gpu")} name="gpuLayers" inputmode="numeric" value={v.gpuLayers ?? ""} {...invalid("gpuLayers")} {...fitOnInput} />
        <FieldError name="gpuLayers" />
        <label for={f("idle")}>Idle timeout (s)</label>
        <input id={f("idle")} name="idleTimeoutSeconds" inputmode="numeric" value={v.idleTimeoutSeconds ?? ""} {...invalid("idleTimeoutSeconds")} />
        <FieldError name="idleTimeoutSeconds" />
        <label for={f("aliases")}>Aliases</label>
        <input id={f("aliases")} name="aliases" value={v.aliases ?? ""} placeholder="comma separated" {...invalid("aliases")} />
        <FieldError name="aliases" />
        <label for={f("args")}>Extra arguments</label>
        <textarea id={f("args")} name="extraArgs" rows={2} placeholder="one per line, e.g. --flash-attn" {...invalid("extraArgs")}>{v.extraArgs ?? ""}</textarea>
        <FieldError name="extraArgs" />
        <label for={f("rpc")}>RPC workers</label>
        <input id={f("rpc")} name="rpc" value={v.rpc ?? ""} placeholder='"all" or worker names, comma separated' {...invalid("rpc", "rpc-hint")} />
        <FieldError name="rpc" />
        <label for={f("split")}>Tensor split</label>
        <input id={f("split")} name="tensorSplit" value={v.tensorSplit ?? ""} placeholder="proportions, e.g. 3, 1" {...invalid("tensorSplit", "rpc-hint")} />
        <FieldError name="tensorSplit" />
        <span></span>
        <p id={f("rpc-hint")} class="hint">
          RPC workers (the <code>rpcWorkers</code> of the configuration) run part of the model on other hosts through llama.cpp's rpc-server: llama-server starts with <code>--rpc</code> over them, and <code>--tensor-split</code> when a split is given.
        </p>
        <span></span>
        <label class="check">
          <input type="checkbox" name="autoStart" value="1" checked={v.autoStart === "1"} /> Start with the proxy
        </label>
        <span></span>
        <label class="check">
          <input type="checkbox" name="kvCache" value="1" checked={v.kvCache === "1"} /> Keep conversations across swaps (KV cache)
        </label>
        <p id={f("rewrite-hint")} class="hint">
          Request rewriting, applied to every request for this model: strip, then defaults (only where the client sent nothing), then overrides (always).
        </p>
        <label for={f("strip")}>Strip</label>
        <input id={f("strip")} name="strip" value={v.strip ?? ""} placeholder="comma separated, e.g. logit_bias, n_probs" {...invalid("strip", "rewrite-hint")} />
        <FieldError name="strip" />
        <label for={f("defaults")}>Defaults</label>
        <textarea id={f("defaults")} name="defaults" rows={2} spellcheck={false} placeholder='JSON, e.g. {"temperature": 0.7}' {...invalid("defaults", "rewrite-hint")}>{v.defaults ?? ""}</textarea>
        <FieldError name="defaults" />
        <label for={f("overrides")}>Overrides</label>
        <textarea id={f("overrides")} name="overrides" rows={2} spellcheck={false} placeholder='JSON, e.g. {"max_tokens": 512}' {...invalid("overrides", "rewrite-hint")}>{v.overrides ?? ""}</textarea>
        <FieldError name="overrides" />
        <span></span>
        <div>
          <button type="submit" class="btn">Save settings</button>
          {state.settingsSaved ? <span class="saved" role="status"> Saved.</span> : null}
          {count ? (
            <p class="field-error" role="alert">
              Not saved: {count === 1 ? "one field needs" : `${count} fields need`} fixing.{errors._form ? ` ${errors._form}` : ""}
            </p>
          ) : null}
          {state.settingsError ? <p class="field-error" role="alert">{state.settingsError}</p> : null}
        </div>
      </form>
    </details>
  );
}

export interface RowState {
  /** The API refused the save (its "message: details"). */
  settingsError?: string;
  /** The form's own validation: one message per field. */
  fieldErrors?: FieldErrors;
  /** What was typed, shown back after a refused save. */
  values?: FormValues;
  settingsSaved?: boolean;
}

/**
 * A model's share of the live queue, under its status: "2 running · 1 waiting", a link to its
 * requests on the Activity page (where they can be cancelled). Always rendered (empty when idle)
 * so console.js can replace it with /ui/models/queue's copy on each requests_update push.
 */
export function QueueBadge(props: { id: string; queue?: ModelQueue }) {
  const q = props.queue;
  const parts = q ? [q.running ? `${q.running} running` : "", q.queued ? `${q.queued} waiting` : ""].filter(Boolean) : [];
  return (
    <div id={`queue-${props.id}`} class="queue-badge small" data-running={q?.running ?? 0} data-queued={q?.queued ?? 0}>
      {parts.length ? <a href={`/activity?model=${encodeURIComponent(props.id)}`}>{parts.join(" · ")}</a> : null}
    </div>
  );
}

/**
 * One model's row. /ui/models/:id/row returns it alone: while the model loads, the row polls
 * itself every second (elapsed time and stage) instead of the whole table being re-sent.
 */
export function ModelRow(props: { m: ModelView; now: number; state?: RowState }) {
  const { m } = props;
  const poll = m.status === "loading" ? { "hx-get": `/ui/models/${encodeURIComponent(m.id)}/row`, "hx-trigger": "every 1s", "hx-target": "this", "hx-swap": "outerHTML" } : {};
  return (
    <tr id={`model-${m.id}`} data-model-id={m.id} data-status={m.status} {...poll}>
      <td data-label="Model">
        <div class="model-name">{m.name}</div>
        <div class="muted path" title={m.path}>{m.path}</div>
        {m.missing ? <div class="field-error">File missing</div> : null}
        {m.status === "loading" ? <Progress m={m} now={props.now} /> : null}
        {m.status === "error" ? <ErrorDetails m={m} /> : null}
        <SettingsEditor m={m} state={props.state} />
        <KvCacheList m={m} now={props.now} />
      </td>
      <td data-label="Status">
        <StatusBadge status={m.status} detail={m.statusDetail} />
        {m.statusDetail && m.status !== "loading" && !(m.status === "error" && m.error) ? <div class="muted small">{m.statusDetail}</div> : null}
        {m.port ? <div class="muted small">port {m.port}</div> : null}
        <QueueBadge id={m.id} queue={m.queue} />
      </td>
      <td data-label="Family">{m.family}</td>
      <td data-label="Quant">{m.quantization ?? "–"}</td>
      <td data-label="Size" class="num">{formatGB(m.size)}</td>
      <td data-label="Context" class="num">{m.contextSize ? m.contextSize.toLocaleString("en-US") : "–"}</td>
      <td data-label="Memory" class="num"><MemoryCell m={m} /></td>
      <td data-label="Actions"><Actions m={m} /></td>
    </tr>
  );
}

/**
 * The models table: the Models page renders it, /ui/models/table returns it, and every action
 * answers with it. It re-fetches itself on each models_update push; a loading row also polls
 * itself (ModelRow), so progress moves between pushes.
 */
export function ModelsTable(props: {
  models: ModelView[];
  now?: number;
  notice?: Notice | null;
  rowState?: Record<string, RowState>;
}) {
  const now = props.now ?? Date.now();
  return (
    <section
      id="models-table"
      class="card"
      aria-labelledby="models-heading"
      hx-get="/ui/models/table"
      hx-trigger="lap-models from:body"
      hx-target="this"
      hx-swap="outerHTML"
    >
      {/* Every control inside names its own hx-target: a loading row sets hx-target="this" for
          its polling, which its buttons must not inherit. */}
      <h2 id="models-heading">Models <span class="muted">({props.models.length})</span></h2>
      <NoticeBox notice={props.notice} />
      {props.models.length === 0 ? (
        <p class="empty">No models yet. Discover the GGUF files in a folder or register one by its path below.</p>
      ) : (
        <div class="table-wrap">
          <table class="models">
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Status</th>
                <th scope="col">Family</th>
                <th scope="col">Quant</th>
                <th scope="col" class="num">Size</th>
                <th scope="col" class="num">Context</th>
                <th scope="col" class="num">Memory</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {props.models.map((m) => (
                <ModelRow m={m} now={now} state={props.rowState?.[m.id]} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
