/** @jsxImportSource hono/jsx */
import type { ModelView } from "../data";
import { Layout } from "../layout";

/**
 * The model picker. It re-renders itself on models_update (statuses change as models load and
 * stop), keeping the current choice: htmx sends the select's own value with the GET.
 */
export function ModelSelect(props: { models: ModelView[]; selected?: string }) {
  return (
    <select id="pg-model" name="model" required hx-get="/ui/playground/models" hx-trigger="lap-models from:body" hx-target="this" hx-swap="outerHTML">
      {props.models.length === 0 ? <option value="">no models registered</option> : null}
      {props.models.map((m) => (
        <option value={m.id} selected={m.id === props.selected}>
          {m.name} ({m.status})
        </option>
      ))}
    </select>
  );
}

export function PlaygroundPage(props: { models: ModelView[] }) {
  const firstRunning = props.models.find((m) => m.status === "running");
  return (
    <Layout title="Playground" active="playground" topics={["models"]}>
      <h1>Playground</h1>
      <noscript>
        <div class="callout" data-tone="error">The playground streams tokens with JavaScript; please enable it.</div>
      </noscript>
      <div class="playground">
        <form id="chat-form" class="card grid-form" aria-label="Chat">
          <label for="pg-model">Model</label>
          <ModelSelect models={props.models} selected={firstRunning?.id} />
          <label for="pg-system">System prompt</label>
          <input id="pg-system" name="system" placeholder="optional" />
          <label for="pg-temp">Temperature</label>
          <input id="pg-temp" name="temperature" inputmode="decimal" value="0.7" />
          <label for="pg-max">Max tokens</label>
          <input id="pg-max" name="max_tokens" inputmode="numeric" value="256" />
          <label for="pg-message">Message</label>
          <textarea id="pg-message" name="message" rows={3} required placeholder="Ask something… (Ctrl+Enter sends)"></textarea>
          <span></span>
          <div class="form-actions">
            <button type="submit" class="btn primary" id="pg-send">Send</button>
            <button type="button" class="btn" id="pg-stop" disabled>Stop</button>
            <button type="button" class="btn" id="pg-clear">Clear chat</button>
          </div>
        </form>
        <section class="card" aria-labelledby="pg-out-heading">
          <h2 id="pg-out-heading">Conversation</h2>
          <p class="muted small">A stopped model is started by the proxy on the first request; the first token then waits for the load.</p>
          <div id="pg-transcript" class="transcript" aria-live="polite"></div>
          <dl id="pg-stats" class="stats">
            <div><dt>Time to first token</dt><dd id="pg-ttft">–</dd></div>
            <div><dt>Tokens per second</dt><dd id="pg-tps">–</dd></div>
            <div><dt>Tokens</dt><dd id="pg-tokens">–</dd></div>
          </dl>
        </section>
      </div>
    </Layout>
  );
}
