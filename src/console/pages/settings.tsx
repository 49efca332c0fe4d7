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
}) {
  return (
    <Layout title="Settings" active="settings" topics={[]}>
      <h1>Settings</h1>
      <p class="muted">
        Saved to <code>{props.configPath}</code>, validated exactly like <code>POST /api/config</code>.
      </p>
      <ConfigForm values={props.values} errors={props.errors} savedAt={props.savedAt} formError={props.formError} loadError={props.loadError} />
    </Layout>
  );
}
