/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { validate } from "../../http/validate";
import type { Services } from "../../services";
import { ConfirmDeletePage, ModelsPage } from "../pages/models";
import { DiscoverForm, RegisterForm } from "../partials/model-forms";
import { FitHint, ModelRow, ModelsTable, type Notice, type RowState } from "../partials/models";
import { apiFor, attempt, type AppFetch } from "../api-client";
import { modelViews } from "../data";
import { formStatus, isHtmx, splitList, str } from "./helpers";

/** The settings editor's fields as typed: blank = not set; otherwise the API's limits. */
const formInt = (label: string, min: number, max: number) =>
  z
    .string()
    .trim()
    .max(12, `${label} is too long`)
    .refine((v) => v === "" || /^-?\d+$/.test(v), `${label} must be a whole number`)
    .transform((v) => (v === "" ? undefined : Number(v)))
    .refine((n) => n === undefined || (n >= min && n <= max), `${label} must be between ${min} and ${max}`)
    .optional();
const fitFormQuery = z.object({ ctxSize: formInt("Context size", 0, 4_194_304), gpuLayers: formInt("GPU layers", -1, 100_000) });

const idParam = z.object({ id: z.string().min(1).max(200) });

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
    return c.html(<ModelsPage models={modelViews(s)} basePath={basePath()} notice={notice} />, status);
  };

  app.get("/models", (c) => c.html(<ModelsPage models={modelViews(s)} basePath={basePath()} />));
  app.get("/ui/models/table", (c) => c.html(<ModelsTable models={modelViews(s)} />));
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
  app.get("/ui/models/:id/fit", validate("param", idParam), async (c) => {
    const { id } = c.req.valid("param");
    if (!s.registry.get(id)) return c.html(<FitHint fit={null} error={`No model "${id}"`} />, 404);
    const q = fitFormQuery.safeParse(c.req.query());
    if (!q.success) return c.html(<FitHint fit={null} error={q.error.issues[0]?.message ?? "invalid value"} />);
    return c.html(<FitHint fit={await s.pool.fit(id, q.data)} />);
  });

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

  app.post("/ui/models/:id/delete", validate("param", idParam), async (c) => {
    const { id } = c.req.valid("param");
    const form = await c.req.parseBody();
    const row = s.registry.get(id);
    if (!row) return modelsAnswer(c, { tone: "error", text: `No model "${id}"` }, 404);
    if (form.confirmed !== "1") {
      const model = modelViews(s).find((m) => m.id === id)!;
      return c.html(<ConfirmDeletePage model={model} />);
    }
    const res = await attempt(apiFor(c, deps.fetch).removeModel(id));
    if (!res.ok) return modelsAnswer(c, { tone: "error", text: `Could not remove ${row.name}`, details: res.error });
    return modelsAnswer(c, { tone: "ok", text: `${row.name} removed from the registry.` });
  });

  app.post("/ui/models/:id/settings", validate("param", idParam), async (c) => {
    const { id } = c.req.valid("param");
    const form = await c.req.parseBody();
    if (!s.registry.get(id)) return modelsAnswer(c, { tone: "error", text: `No model "${id}"` }, 404);
    // PATCH /api/models/:id semantics: null removes an override (back to the global value), so
    // an emptied field means "use the default". Numbers go as numbers; anything else is passed
    // on as typed so the API's schema names the problem.
    const settings: Record<string, unknown> = {};
    for (const k of ["ctxSize", "batchSize", "threads", "gpuLayers", "idleTimeoutSeconds"]) {
      const v = str(form[k])?.trim();
      settings[k] = !v ? null : /^[+-]?\d+$/.test(v) ? Number(v) : v;
    }
    const aliases = splitList(form.aliases, true);
    settings.aliases = aliases.length ? aliases : null;
    const extraArgs = splitList(form.extraArgs, false);
    settings.extraArgs = extraArgs.length ? extraArgs : null;
    settings.autoStart = form.autoStart === "1";
    // Checked = on, which is the default: store no override; unchecked = off for this model.
    settings.kvCache = form.kvCache === "1" ? null : false;
    const res = await attempt(apiFor(c, deps.fetch).updateModel(id, { settings }));
    const rowState: Record<string, RowState> = { [id]: res.ok ? { settingsSaved: true } : { settingsErrors: res.error } };
    return modelsAnswer(c, null, res.ok ? 200 : 400, rowState);
  });

  // Saved KV caches of a model: delete one, or all of them (through DELETE /api/models/:id/kv-cache).
  const kvEntryParam = idParam.extend({ entry: z.string().min(1).max(100) });
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

  app.post("/ui/models/register", async (c) => {
    const form = await c.req.parseBody();
    const values = { path: str(form.path)?.trim(), name: str(form.name)?.trim(), family: str(form.family)?.trim(), description: str(form.description)?.trim() };
    const answer = (node: string | Promise<string>, status: ContentfulStatusCode = 200) =>
      isHtmx(c) ? c.html(node, formStatus(c, status)) : c.html(<ModelsPage models={modelViews(s)} basePath={basePath()} register={node} />, status);
    if (!values.path) return answer(<RegisterForm values={values} error="The file path is required." />, 400);
    // The API names the model from the file when no name is given.
    const entry = {
      path: values.path,
      ...(values.name ? { name: values.name } : {}),
      ...(values.family ? { family: values.family } : {}),
      ...(values.description ? { description: values.description } : {}),
    };
    const res = await attempt(apiFor(c, deps.fetch).registerModels([entry]));
    if (!res.ok) return answer(<RegisterForm values={values} error={res.error} />, res.status === 409 ? 409 : 400);
    // The table refreshes itself from the models_update push; tell it now too, for no-socket cases.
    c.header("HX-Trigger", "lap-models");
    return answer(<RegisterForm notice={{ tone: "ok", text: `Registered ${res.data.models[0]?.name ?? values.path}.` }} />);
  });

  app.post("/ui/models/discover", async (c) => {
    const form = await c.req.parseBody();
    const values = {
      paths: str(form.paths) ?? "",
      recursive: form.recursive === "1",
      includePatterns: str(form.includePatterns) ?? "",
      excludePatterns: str(form.excludePatterns) ?? "",
    };
    const answer = (node: string | Promise<string>, status: ContentfulStatusCode = 200) =>
      isHtmx(c) ? c.html(node, formStatus(c, status)) : c.html(<ModelsPage models={modelViews(s)} basePath={basePath()} discover={node} />, status);
    const paths = splitList(values.paths, false);
    if (!paths.length) return answer(<DiscoverForm values={values} error="Give at least one folder." />, 400);
    const include = splitList(values.includePatterns, true);
    const exclude = splitList(values.excludePatterns, true);
    const res = await attempt(
      apiFor(c, deps.fetch).discoverModels(paths, {
        recursive: values.recursive,
        ...(include.length ? { includePatterns: include } : {}),
        ...(exclude.length ? { excludePatterns: exclude } : {}),
      }),
    );
    if (!res.ok) return answer(<DiscoverForm values={values} error={res.error} />, 400);
    c.header("HX-Trigger", "lap-models");
    return answer(<DiscoverForm values={values} result={res.data} />);
  });

  return app;
}
