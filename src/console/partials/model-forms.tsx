/** @jsxImportSource hono/jsx */
import { formatGB } from "../format";
// What POST /api/models/discover answers: the catalogue's own type, not a copy.
import type { DiscoverResult } from "../../models/catalog";
import type { FieldErrors } from "../forms";
import { GridFieldError, invalidAttrs } from "./fields";
import { NoticeBox, type Notice } from "./models";

export interface RegisterValues {
  name?: string;
  path?: string;
  family?: string;
  description?: string;
}

/**
 * Register one model by its path (POST /api/models with one entry). `errors`: the form's own
 * validation, per field; `error`: the API refused it (a duplicate, a file that is not GGUF).
 */
export function RegisterForm(props: { values?: RegisterValues; errors?: FieldErrors; error?: string; notice?: Notice | null }) {
  const v = props.values ?? {};
  const e = props.errors;
  return (
    <section id="register-form" class="card" aria-labelledby="register-heading">
      <h2 id="register-heading">Register a model</h2>
      <form method="post" action="/ui/models/register" hx-post="/ui/models/register" hx-target="#register-form" hx-swap="outerHTML" class="grid-form">
        <label for="reg-path">GGUF file path</label>
        <input id="reg-path" name="path" required value={v.path ?? ""} placeholder="/models/llama-3-8b-instruct.Q4_K_M.gguf" {...invalidAttrs("reg", "path", e, props.error ? "reg-error" : undefined)} />
        <GridFieldError prefix="reg" name="path" errors={e} />
        <label for="reg-name">Name <span class="muted">(optional)</span></label>
        <input id="reg-name" name="name" value={v.name ?? ""} placeholder="from the file name" {...invalidAttrs("reg", "name", e)} />
        <GridFieldError prefix="reg" name="name" errors={e} />
        <label for="reg-family">Family <span class="muted">(optional)</span></label>
        <input id="reg-family" name="family" value={v.family ?? ""} placeholder="read from the file" {...invalidAttrs("reg", "family", e)} />
        <GridFieldError prefix="reg" name="family" errors={e} />
        <label for="reg-desc">Description <span class="muted">(optional)</span></label>
        <input id="reg-desc" name="description" value={v.description ?? ""} {...invalidAttrs("reg", "description", e)} />
        <GridFieldError prefix="reg" name="description" errors={e} />
        <span></span>
        <div>
          <button type="submit" class="btn primary">Register</button>
          {props.error ? <p id="reg-error" class="field-error" role="alert">{props.error}</p> : null}
          <NoticeBox notice={props.notice} />
        </div>
      </form>
    </section>
  );
}

export interface DiscoverValues {
  paths?: string;
  recursive?: boolean;
  includePatterns?: string;
  excludePatterns?: string;
}


/** Discover GGUF files (POST /api/models/discover) and show what was found. */
export function DiscoverForm(props: { values?: DiscoverValues; errors?: FieldErrors; error?: string; result?: DiscoverResult; basePath?: string }) {
  const v = props.values ?? {};
  const e = props.errors;
  return (
    <section id="discover-form" class="card" aria-labelledby="discover-heading">
      <h2 id="discover-heading">Discover models</h2>
      <form method="post" action="/ui/models/discover" hx-post="/ui/models/discover" hx-target="#discover-form" hx-swap="outerHTML" class="grid-form" hx-indicator="#discover-busy">
        <label for="disc-paths">Folders</label>
        <textarea id="disc-paths" name="paths" rows={2} placeholder={props.basePath ?? "/models"} {...invalidAttrs("disc", "paths", e, "disc-paths-hint")}>{v.paths ?? props.basePath ?? ""}</textarea>
        <GridFieldError prefix="disc" name="paths" errors={e} />
        <span></span>
        <p id="disc-paths-hint" class="hint">One folder per line.</p>
        <span></span>
        <label class="check">
          <input type="checkbox" name="recursive" value="1" checked={v.recursive ?? true} /> Include sub-folders
        </label>
        <label for="disc-include">Include patterns</label>
        <input id="disc-include" name="includePatterns" value={v.includePatterns ?? "*.gguf"} placeholder="*.gguf" {...invalidAttrs("disc", "includePatterns", e)} />
        <GridFieldError prefix="disc" name="includePatterns" errors={e} />
        <label for="disc-exclude">Exclude patterns</label>
        <input id="disc-exclude" name="excludePatterns" value={v.excludePatterns ?? ""} placeholder="*.tmp, *.bak" {...invalidAttrs("disc", "excludePatterns", e)} />
        <GridFieldError prefix="disc" name="excludePatterns" errors={e} />
        <span></span>
        <div>
          <button type="submit" class="btn primary">Scan</button>
          <span id="discover-busy" class="htmx-indicator muted"> scanning…</span>
          {props.error ? <p class="field-error" role="alert">{props.error}</p> : null}
        </div>
      </form>
      {props.result ? (
        <div class="discover-result" role="status">
          <p>
            Found <strong>{props.result.totalFound}</strong> model{props.result.totalFound === 1 ? "" : "s"} in{" "}
            {props.result.scannedPaths.join(", ") || "no folder"}.
          </p>
          {props.result.discovered.length ? (
            <ul class="found">
              {props.result.discovered.map((m) => (
                <li>
                  <strong>{m.name}</strong> <span class="muted">{[m.family, m.quantization, formatGB(m.size)].filter(Boolean).join(" · ")}</span>
                  <div class="muted path">{m.path}</div>
                </li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}
    </section>
  );
}
