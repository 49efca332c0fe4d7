/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "../../zod";
import { describeIssues, validate } from "../../http/validate";
import type { Services } from "../../services";
import { ConfirmDeletePage, ModelsPage } from "../pages/models";
import { DiscoverForm, RegisterForm } from "../partials/model-forms";
import { FitHint, ModelRow, ModelsTable, QueueBadge, type Notice, type RowState } from "../partials/models";
import { apiFor, attempt, type AppFetch } from "../api-client";
import { modelViews, queueByModel } from "../data";
import { confirmFormSchema, discoverFormSchema, fieldErrors, fitFormQuery, modelSettingsFormSchema, registerFormSchema, typedValues } from "../forms";
import { formStatus, isHtmx } from "./helpers";

const idParam = z.object({ id: z.string().check(z.minLength(1), z.maxLength(200)) });

/** The models page: the table, its rows, start/stop/remove/settings, register and discover forms. */
export function modelsRoutes(s: Services, deps: { fetch: AppFetch }) {
  const app = new Hono();
  const basePath = () => s.config.get().basePath;
  /** The models table (htmx) or the whole page (plain form post), with a notice. */
  const modelsAnswer = (c: Context, notice?: Notice | null, status: ContentfulStatusCode = 200, rowState?: Record<string, RowState>) => {
    if (isHtmx(c)) return c.html(<ModelsTable models={modelViews(s)} notice={notice} rowState={rowState} />, formStatus(c, status));
    // Plain form post (no JavaScript): Post/Redirect/Get when it worked, so a reload does not
    // repeat the action; a failure is shown on the page that answers the post.
    if (status === 200 && notice?.tone !== "error" && !rowState) return c.redirect("/models", 303);
    return c.html(<ModelsPage models={modelViews(s)} basePath={basePath()} notice={notice} rowState={rowState} />, status);
  };

  app.get("/models", (c) => c.html(<ModelsPage models={modelViews(s)} basePath={basePath()} />));
  app.get("/ui/models/table", (c) => c.html(<ModelsTable models={modelViews(s)} />));
  // Every row's live-queue badge, asked for once per requests_update push (not once per row);
  // console.js puts each into the row that shows it.
  app.get("/ui/models/queue", (c) => {
    const queues = queueByModel(s.tracker.list());
    return c.html(<>{s.registry.list().map((m) => <QueueBadge id={m.id} queue={queues[m.id]} />)}</>);
  });
  app.get("/ui/models/:id/row", validate("param", idParam), (c) => {
    const m = modelViews(s).find((x) => x.id === c.req.valid("param").id);
    // Removed meanwhile: an empty answer swaps the row away.
    return m ? c.html(<ModelRow m={m} now={Date.now()} />) : c.body("", 200);
  });

  app.post("/ui/models/:id/start", validate("param", idParam), async (c) => {
    const { id } = c.req.valid("param");
    const row = s.registry.get(id);
    if (!row) return modelsAnswer(c, { tone: "error", text: `No model "${id}"` }, 404);
    // The load can take minutes: don't hold the request for it. Answer as soon as the start
    // either failed outright (bad binary, no supervisor) or moved the model out of "stopped"
    // (its first status event), with a 1 s cap; the table then follows the load live.
    // Through the pool, like a proxied request: with maxLoadedModels reached it first stops the
    // least recently used idle model (a swap) instead of overfilling the machine.
    const starting = s.pool.start(id); // (the owner marks it used for LRU and idle TTL)
    let failure: unknown = null;
    let unsubscribe = () => {};
    await Promise.race([
      starting.then(
        () => undefined,
        (err) => void (failure = err),
      ),
      new Promise<void>((resolve) => {
        unsubscribe = s.bus.on("model.status", (e) => e.modelId === id && resolve());
      }),
      Bun.sleep(1000),
    ]);
    unsubscribe();
    // A later failure is shown from the supervisor's state (status "error" with the log tail);
    // catching here only keeps it from becoming an unhandled rejection.
    starting.catch((err) => s.log.debug(`Start of ${id} from the console failed: ${(err as Error).message}`));
    if (failure) {
      const e = failure as Error & { details?: string };
      return modelsAnswer(c, { tone: "error", text: `Could not start ${row.name}: ${e.message}`, details: e.details }, 200);
    }
    return modelsAnswer(c);
  });

  // The fit hint: the same answer as GET /api/models/:id/fit. Empty form fields mean "the model's
  // setting" (the editor sends both fields as typed).
  app.get(
    "/ui/models/:id/fit",
    validate("param", idParam),
    // A value being typed ("abc", "-") is a hint, not an error page.
    validate("query", fitFormQuery, ({ error }, c) => c.html(<FitHint fit={null} error={error.issues[0]?.message ?? "invalid value"} />)),
    async (c) => {
      const { id } = c.req.valid("param");
      // A hint asked for by a row that is being removed (its fit request was already on its way):
      // a hint, not an HTTP error, which the browser would log for a row nobody sees any more.
      if (!s.registry.get(id)) return c.html(<FitHint fit={null} error={`No model "${id}"`} />);
      return c.html(<FitHint fit={await s.pool.fit(id, c.req.valid("query"))} />);
    },
  );

  app.post("/ui/models/:id/stop", validate("param", idParam), async (c) => {
    const { id } = c.req.valid("param");
    const row = s.registry.get(id);
    if (!row) return modelsAnswer(c, { tone: "error", text: `No model "${id}"` }, 404);
    try {
      await s.pool.stop(id); // the owner: also cancels a start still waiting for room
    } catch (err) {
      return modelsAnswer(c, { tone: "error", text: `Could not stop ${row.name}: ${(err as Error).message}` });
    }
    return modelsAnswer(c, { tone: "ok", text: `${row.name} stopped.` });
  });

  app.post("/ui/models/:id/delete", validate("param", idParam), validate("form", confirmFormSchema, ({ error }, c) => modelsAnswer(c, { tone: "error", text: "Invalid form data", details: describeIssues(error) }, 400)), async (c) => {
    const { id } = c.req.valid("param");
    const row = s.registry.get(id);
    if (!row) return modelsAnswer(c, { tone: "error", text: `No model "${id}"` }, 404);
    if (c.req.valid("form").confirmed !== "1") {
      const model = modelViews(s).find((m) => m.id === id)!;
      return c.html(<ConfirmDeletePage model={model} />);
    }
    const res = await attempt(apiFor(c, deps.fetch).removeModel(id));
    if (!res.ok) return modelsAnswer(c, { tone: "error", text: `Could not remove ${row.name}`, details: res.error });
    return modelsAnswer(c, { tone: "ok", text: `${row.name} removed from the registry.` });
  });

  // The editor's fields are checked by the API's own schema for each setting (console/forms.ts):
  // a refused field is shown next to itself, with what was typed, in the re-rendered table.
  const settingsRefused = (c: Context, id: string, state: RowState) => {
    if (!s.registry.get(id)) return modelsAnswer(c, { tone: "error", text: `No model "${id}"` }, 404);
    return modelsAnswer(c, null, 400, { [id]: state });
  };
  app.post(
    "/ui/models/:id/settings",
    validate("param", idParam),
    validate("form", modelSettingsFormSchema, ({ error, input }, c) => settingsRefused(c, c.req.param("id")!, { fieldErrors: fieldErrors(error), values: typedValues(input) })),
    async (c) => {
      const { id } = c.req.valid("param");
      if (!s.registry.get(id)) return modelsAnswer(c, { tone: "error", text: `No model "${id}"` }, 404);
      // PATCH semantics: null removes an override (back to the global value).
      const res = await attempt(apiFor(c, deps.fetch).updateModel(id, { settings: c.req.valid("form") }));
      if (res.ok) return modelsAnswer(c, null, 200, { [id]: { settingsSaved: true } });
      // Refused by the API itself (an alias another model has): its message, the typed values kept.
      return settingsRefused(c, id, { settingsError: res.error, values: typedValues(await c.req.parseBody()) });
    },
  );

  // Saved KV caches of a model: delete one, or all of them (through DELETE /api/models/:id/kv-cache).
  const kvEntryParam = z.extend(idParam, { entry: z.string().check(z.minLength(1), z.maxLength(100)) });
  app.post("/ui/models/:id/kv-cache/:entry/delete", validate("param", kvEntryParam), async (c) => {
    const { id, entry } = c.req.valid("param");
    const res = await attempt(apiFor(c, deps.fetch).deleteKvCache(id, entry));
    if (!res.ok) return modelsAnswer(c, { tone: "error", text: "Could not delete the saved conversation", details: res.error }, res.status === 404 ? 404 : 400);
    return modelsAnswer(c, { tone: "ok", text: "Saved conversation deleted." });
  });
  app.post("/ui/models/:id/kv-cache/delete", validate("param", idParam), async (c) => {
    const { id } = c.req.valid("param");
    const res = await attempt(apiFor(c, deps.fetch).deleteKvCaches(id));
    if (!res.ok) return modelsAnswer(c, { tone: "error", text: "Could not delete the saved conversations", details: res.error }, res.status === 404 ? 404 : 400);
    return modelsAnswer(c, { tone: "ok", text: `${res.data.deleted} saved conversation(s) deleted.` });
  });

  const registerAnswer = (c: Context, node: string | Promise<string>, status: ContentfulStatusCode = 200) =>
    isHtmx(c) ? c.html(node, formStatus(c, status)) : c.html(<ModelsPage models={modelViews(s)} basePath={basePath()} register={node} />, status);
  app.post(
    "/ui/models/register",
    validate("form", registerFormSchema, ({ error, input }, c) => registerAnswer(c, <RegisterForm values={typedValues(input)} errors={fieldErrors(error)} />, 400)),
    async (c) => {
      const entry = c.req.valid("form");
      const values = typedValues(await c.req.parseBody());
      // The API names the model from the file when no name is given.
      const res = await attempt(apiFor(c, deps.fetch).registerModels([entry]));
      if (!res.ok) return registerAnswer(c, <RegisterForm values={values} error={res.error} />, res.status === 409 ? 409 : 400);
      // The table refreshes itself from the models_update push; tell it now too, for no-socket cases.
      c.header("HX-Trigger", "lap-models");
      return registerAnswer(c, <RegisterForm notice={{ tone: "ok", text: `Registered ${res.data.models[0]?.name ?? entry.path}.` }} />);
    },
  );

  const discoverAnswer = (c: Context, node: string | Promise<string>, status: ContentfulStatusCode = 200) =>
    isHtmx(c) ? c.html(node, formStatus(c, status)) : c.html(<ModelsPage models={modelViews(s)} basePath={basePath()} discover={node} />, status);
  /** The discover form's fields as typed (the checkbox: absent = unchecked). */
  const discoverValues = (input: unknown) => {
    const v = typedValues(input);
    return { paths: v.paths ?? "", recursive: v.recursive === "1", includePatterns: v.includePatterns ?? "", excludePatterns: v.excludePatterns ?? "" };
  };
  app.post(
    "/ui/models/discover",
    validate("form", discoverFormSchema, ({ error, input }, c) => discoverAnswer(c, <DiscoverForm values={discoverValues(input)} errors={fieldErrors(error)} />, 400)),
    async (c) => {
      const { paths, ...options } = c.req.valid("form");
      const values = discoverValues(await c.req.parseBody());
      const res = await attempt(apiFor(c, deps.fetch).discoverModels(paths, options));
      if (!res.ok) return discoverAnswer(c, <DiscoverForm values={values} error={res.error} />, 400);
      c.header("HX-Trigger", "lap-models");
      return discoverAnswer(c, <DiscoverForm values={values} result={res.data} />);
    },
  );

  return app;
}
