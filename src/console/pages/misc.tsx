/** @jsxImportSource hono/jsx */
import { Layout } from "../layout";

export function LoginPage(props: { next: string; error?: string }) {
  return (
    <Layout title="Log in" active="dashboard" topics={[]} socket={false}>
      <h1>Log in</h1>
      <form method="post" action="/login" class="card grid-form narrow">
        <p class="hint">This proxy requires its API key.</p>
        <input type="hidden" name="next" value={props.next} />
        <label for="login-key">API key</label>
        <input id="login-key" name="key" type="password" autocomplete="current-password" required aria-invalid={props.error ? "true" : undefined} />
        <span></span>
        <div>
          <button type="submit" class="btn primary">Log in</button>
          {props.error ? <p class="field-error" role="alert">{props.error}</p> : null}
        </div>
      </form>
    </Layout>
  );
}

export function ErrorPage(props: { status: number; message: string; details?: string }) {
  return (
    <Layout title="Error" active="dashboard" topics={[]}>
      <h1>{props.message}</h1>
      <section class="card">
        <p>{props.details ?? `HTTP ${props.status}`}</p>
        <p><a href="/">Back to the dashboard</a></p>
      </section>
    </Layout>
  );
}
