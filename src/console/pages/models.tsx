/** @jsxImportSource hono/jsx */
import type { ModelView } from "../data";
import { Layout } from "../layout";
import { DiscoverForm, RegisterForm } from "../partials/model-forms";
import type { Child } from "hono/jsx";
import { ModelsTable, type Notice, type RowState } from "../partials/models";

export function ModelsPage(props: {
  models: ModelView[];
  basePath: string;
  notice?: Notice | null;
  /** Per-row state of a plain form post (the settings editor's errors or "saved"). */
  rowState?: Record<string, RowState>;
  /** A form answered by a plain post (no JavaScript), shown in place of the empty one. */
  discover?: Child;
  register?: Child;
}) {
  return (
    <Layout title="Models" active="models" topics={["models", "requests"]}>
      <h1>Models</h1>
      <ModelsTable models={props.models} notice={props.notice} rowState={props.rowState} />
      {/* Each requests_update push refreshes every row's queue badge (console.js places them). */}
      <div hidden id="queue-badges" hx-get="/ui/models/queue" hx-trigger="lap-requests from:body" hx-swap="none"></div>
      <div class="two-col">
        {props.discover ?? <DiscoverForm basePath={props.basePath} />}
        {props.register ?? <RegisterForm />}
      </div>
    </Layout>
  );
}

/** The no-JavaScript confirmation step of "Remove" (htmx asks with hx-confirm instead). */
export function ConfirmDeletePage(props: { model: ModelView }) {
  const id = encodeURIComponent(props.model.id);
  return (
    <Layout title="Remove model" active="models" topics={[]}>
      <h1>Remove {props.model.name}?</h1>
      <section class="card">
        <p>This removes the model from the registry. The file <code>{props.model.path}</code> stays on disk.</p>
        <form method="post" action={`/ui/models/${id}/delete`} class="form-actions">
          <input type="hidden" name="confirmed" value="1" />
          <button type="submit" class="btn danger">Remove</button>
          <a class="btn" href="/models">Cancel</a>
        </form>
      </section>
    </Layout>
  );
}
