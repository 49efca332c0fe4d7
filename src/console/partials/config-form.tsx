/** @jsxImportSource hono/jsx */
import type { FieldErrors, FormValues as ConfigFormValues } from "../forms";

interface FieldSpec {
  name: string;
  label: string;
  hint?: string;
  type?: "text" | "number";
}

const LLAMA_FIELDS: FieldSpec[] = [
  { name: "serverPath", label: "llama-server binary", hint: "Full path, or a name looked up on PATH", type: "text" },
  { name: "basePath", label: "Models folder", hint: "Where discovery looks by default", type: "text" },
  { name: "host", label: "Host", hint: "Address the llama-server processes bind to", type: "text" },
  { name: "port", label: "First port", hint: "Each running model gets the next free port from here" },
  { name: "ctx_size", label: "Context size", hint: "Tokens; 0 = the model's own" },
  { name: "batch_size", label: "Batch size" },
  { name: "threads", label: "CPU threads", hint: "-1 = automatic" },
  { name: "gpu_layers", label: "GPU layers", hint: "-1 = all" },
];

const PROXY_FIELDS: FieldSpec[] = [
  { name: "maxLoadedModels", label: "Models loaded at once", hint: "Starting one more stops the least recently used" },
  { name: "idleTimeoutSeconds", label: "Idle timeout (s)", hint: "Stop a model after this long unused; 0 = never" },
  { name: "loadTimeoutSeconds", label: "Load timeout (s)" },
  { name: "stopTimeoutSeconds", label: "Stop grace period (s)", hint: "Before SIGKILL" },
  { name: "maxRestarts", label: "Crash restarts", hint: "In a row, before giving up" },
  { name: "restartDelayMs", label: "First restart delay (ms)" },
  { name: "restartMaxDelayMs", label: "Max restart delay (ms)" },
  { name: "maxConcurrentRequests", label: "Concurrent requests per model" },
  { name: "maxQueuedRequests", label: "Queued requests per model" },
  { name: "metricsIntervalSeconds", label: "Metrics interval (s)" },
  { name: "historyRetentionHours", label: "History retention (h)", hint: "At least 168" },
  { name: "kvCacheDiskMiB", label: "Saved KV caches (MiB)", hint: "Conversations kept across model swaps; 0 = off" },
  { name: "kvCacheMinTokens", label: "Save slots from (tokens)", hint: "Shorter prompts are not worth a file" },
];

function Field(props: { f: FieldSpec; value?: string; error?: string }) {
  const id = `cfg-${props.f.name}`;
  const described = [props.f.hint ? `${id}-hint` : "", props.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return (
    <div class="field" data-invalid={props.error ? "true" : undefined}>
      <label for={id}>{props.f.label}</label>
      <input
        id={id}
        name={props.f.name}
        value={props.value ?? ""}
        inputmode={props.f.type === "text" ? undefined : "numeric"}
        aria-invalid={props.error ? "true" : undefined}
        aria-describedby={described || undefined}
        spellcheck={false}
        autocomplete="off"
      />
      {props.f.hint ? <small id={`${id}-hint`} class="hint">{props.f.hint}</small> : null}
      {props.error ? (
        <small id={`${id}-error`} class="field-error" data-field-error={props.f.name}>
          {props.error}
        </small>
      ) : null}
    </div>
  );
}

/**
 * The llama-server configuration form. Posts to /ui/settings, which validates with the schema of
 * POST /api/config and answers with this same form: errors next to their fields, or "saved".
 */
export function ConfigForm(props: {
  values: ConfigFormValues;
  errors?: FieldErrors;
  savedAt?: string;
  formError?: string;
  loadError?: string | null;
}) {
  const errors = props.errors ?? {};
  const count = Object.keys(errors).length;
  return (
    <form id="config-form" method="post" action="/ui/settings" hx-post="/ui/settings" hx-target="this" hx-swap="outerHTML" class="card config-form" novalidate>
      {props.loadError ? <div class="callout" data-tone="error" role="alert">{props.loadError}</div> : null}
      {count ? (
        <div class="callout" data-tone="error" role="alert">
          <strong>Not saved:</strong> {count === 1 ? "one field needs" : `${count} fields need`} fixing.
          {errors._form ? <div>{errors._form}</div> : null}
        </div>
      ) : null}
      {props.formError ? <div class="callout" data-tone="error" role="alert">{props.formError}</div> : null}
      {props.savedAt ? (
        <div class="callout" data-tone="ok" role="status">
          Configuration saved at {props.savedAt}. It applies to models started from now on.
        </div>
      ) : null}
      <fieldset>
        <legend>llama-server</legend>
        <div class="fields">
          {LLAMA_FIELDS.map((f) => <Field f={f} value={props.values[f.name]} error={errors[f.name]} />)}
        </div>
      </fieldset>
      <fieldset>
        <legend>Proxy behaviour</legend>
        <div class="fields">
          {PROXY_FIELDS.map((f) => <Field f={f} value={props.values[f.name]} error={errors[f.name]} />)}
        </div>
      </fieldset>
      <div class="form-actions">
        <button type="submit" class="btn primary">Save configuration</button>
        <a class="btn" href="/settings">Reset</a>
      </div>
    </form>
  );
}
