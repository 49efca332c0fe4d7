/** @jsxImportSource hono/jsx */
import type { FieldErrors, FormValues as ConfigFormValues } from "../forms";
import { Layout } from "../layout";
import { ConfigForm } from "../partials/config-form";

export function SettingsPage(props: {
  values: ConfigFormValues;
  errors?: FieldErrors;
  savedAt?: string;
  formError?: string;
  loadError?: string | null;
  configPath: string;
  /** The console needs a login (an API key is set): offer to end this browser's session. */
  signedIn?: boolean;
}) {
  return (
    <Layout title="Settings" active="settings" topics={[]}>
      <h1>Settings</h1>
      <p class="muted">
        Saved to <code>{props.configPath}</code>, validated exactly like <code>POST /api/config</code>.
      </p>
      <ConfigForm values={props.values} errors={props.errors} savedAt={props.savedAt} formError={props.formError} loadError={props.loadError} />
      {props.signedIn ? (
        <section class="card" aria-labelledby="session-heading">
          <h2 id="session-heading">Session</h2>
          <p class="muted">This browser is signed in with the API key until it logs out, the proxy restarts, or 12 hours pass.</p>
          <form method="post" action="/logout">
            <button type="submit" class="btn" data-action="logout">Log out</button>
          </form>
        </section>
      ) : null}
    </Layout>
  );
}
