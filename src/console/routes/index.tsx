/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import { setCookie } from "hono/cookie";
import { bodyLimit } from "hono/body-limit";
import { csrf } from "hono/csrf";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { keyMatches, presentedKey } from "../../http/auth";
import { ApiError } from "../../http/errors";
import { validate } from "../../http/validate";
import { LOG_LEVELS } from "../../logs/types";
import type { Model } from "../../models/types";
import type { Services } from "../../services";
import { DashboardPage } from "../pages/dashboard";
import { LoginPage, ErrorPage } from "../pages/misc";
import { LogsPage } from "../pages/logs";
import { ConfirmDeletePage, ModelsPage } from "../pages/models";
import { MonitoringPage } from "../pages/monitoring";
import { ModelSelect, PlaygroundPage } from "../pages/playground";
import { SettingsPage } from "../pages/settings";
import { Charts, RANGES, type History, type RangeKey } from "../partials/charts";
import { ConfigForm } from "../partials/config-form";
import { DashboardLive } from "../partials/dashboard";
import { LogLines, LogView } from "../partials/logs";
import { DiscoverForm, RegisterForm, type DiscoverResult } from "../partials/model-forms";
import { ModelRow, ModelsTable, type Notice, type RowState } from "../partials/models";
import { callApi, type AppFetch } from "../api-client";
import { getAsset } from "../assets";
import { configToForm, dashboardData, logsAsText, modelViews, parseConfigForm, type LogFilter } from "../data";
import { RecentMetrics } from "../recent";

/** The console's pages (everything else it serves is under /ui/ and /static/). */
export const PAGES = ["/", "/models", "/monitoring", "/logs", "/settings", "/playground"] as const;

const isHtmx = (c: Context) => c.req.header("hx-request") === "true";

/**
 * A form answered with its own errors is a normal outcome for htmx (it swaps the form back in);
 * a 4xx would only make the browser log "Failed to load resource" as a console error. Plain
 * form posts (no JavaScript) keep the honest 4xx.
 */
const formStatus = (c: Context, status: ContentfulStatusCode): ContentfulStatusCode => (isHtmx(c) ? 200 : status);

const logQuerySchema = z.object({
  level: z.enum(LOG_LEVELS).or(z.literal("")).optional(),
  source: z.string().max(200).optional(),
  q: z.string().max(200).optional(),
  afterId: z.coerce.number().int().min(0).optional(),
});

const rangeSchema = z.object({ range: z.enum(Object.keys(RANGES) as [RangeKey, ...RangeKey[]]).optional() });
const idParam = z.object({ id: z.string().min(1).max(200) });

function toFilter(q: z.infer<typeof logQuerySchema>): LogFilter {
  return {
    ...(q.level ? { level: q.level } : {}),
    ...(q.source ? { source: q.source } : {}),
    ...(q.q ? { q: q.q } : {}),
  };
}

/** Splits a textarea/input of paths or patterns: one per line or comma separated. */
const splitList = (text: unknown, commas: boolean) =>
  typeof text === "string"
    ? text
        .split(commas ? /[\n,]/ : /\n/)
        .map((x) => x.trim())
        .filter(Boolean)
    : [];

const str = (v: unknown) => (typeof v === "string" ? v : undefined);

/**
 * The web console: full pages, the htmx fragments they are made of, and the form posts. Every
 * fragment endpoint answers with the component the page renders, so a live refresh and a first
 * load show the same thing. Forms reach the JSON API's own validation: settings through the
 * schema of POST /api/config, model forms through the /api/models endpoints called in process.
 */
export function consoleRoutes(s: Services, deps: { fetch: AppFetch }) {
  const recent = new RecentMetrics(s.bus, s.requests);
  const app = new Hono();

  // Pages are unauthenticated only when the API is. With an API key, the browser proves it once
  // on /login and then carries it in an HttpOnly cookie (which /api and /v1 also accept).
  // Only the console's own paths: this router is mounted at "/", and /api and /v1 answer a
  // missing key in their own shapes.
  const requireLogin = async (c: Context, next: () => Promise<void>) => {
    const key = s.options.apiKey;
    if (!key || keyMatches(key, presentedKey(c.req.raw.headers))) return next();
    if (c.req.method === "GET" && !c.req.path.startsWith("/ui/")) {
      return c.html(<LoginPage next={c.req.path} />, 401);
    }
    return c.text("Log in first: open /login", 401);
  };
  for (const page of PAGES) app.use(page, requireLogin);
  app.use("/ui/*", requireLogin);
  // Form posts change what we execute (serverPath); refuse them from other origins. htmx and
  // plain forms from our own pages send a same-origin Origin / Sec-Fetch-Site.
  app.use("/ui/*", csrf());
  // Console forms are small; refuse anything big before parsing it.
  app.use("/ui/*", bodyLimit({ maxSize: 256 * 1024, onError: (c) => c.text("Form too large (limit 256 kB)", 413) }));
  app.use("/login", csrf());

  app.onError((err, c) => {
    let status: ContentfulStatusCode = 500;
    let message = "Internal error";
    let details: string | undefined = "See the server log";
    if (err instanceof ApiError) {
      status = err.status;
      message = err.message;
      details = err.details;
    } else if (err instanceof HTTPException) {
      if (err.res) return err.res;
      status = err.status as ContentfulStatusCode;
      message = err.message;
      details = undefined;
    } else {
      s.log.error(`Console error on ${c.req.method} ${c.req.path}: ${(err as Error).message}`, { stack: (err as Error).stack });
    }
    // htmx: never swap an error over the fragment that asked (HX-Reswap: none); console.js
    // shows the message in the notice bar instead.
    if (isHtmx(c)) c.header("HX-Reswap", "none");
    if (isHtmx(c)) return c.html(<div class="callout" data-tone="error" role="alert"><strong>{message}</strong>{details ? <div>{details}</div> : null}</div>, status);
    return c.html(<ErrorPage status={status} message={message} details={details} />, status);
  });

  // ---- static files (embedded in the executable) ----------------------------------------
  app.get("/static/:name", (c) => {
    const asset = getAsset(c.req.param("name"));
    if (!asset) return c.text("Not found", 404);
    const etag = `"${asset.hash}"`;
    // A URL carrying the current hash never changes meaning: cache it for a year. Anything else
    // (an old or missing ?v=) must revalidate, which the ETag makes a cheap 304.
    const cache = c.req.query("v") === asset.hash ? "public, max-age=31536000, immutable" : "no-cache";
    if (c.req.header("if-none-match") === etag) {
      return c.body(null, 304, { ETag: etag, "Cache-Control": cache });
    }
    return c.body(asset.body, 200, { "Content-Type": asset.type, ETag: etag, "Cache-Control": cache });
  });

  // ---- login (only meaningful with an API key) -----------------------------------------
  app.get("/login", (c) => c.html(<LoginPage next={c.req.query("next") ?? "/"} />));
  app.post("/login", async (c) => {
    const form = await c.req.parseBody();
    const next = str(form.next)?.startsWith("/") && !str(form.next)!.startsWith("//") ? str(form.next)! : "/";
    const key = str(form.key) ?? "";
    if (!s.options.apiKey) return c.redirect(next, 303);
    if (!keyMatches(s.options.apiKey, key)) return c.html(<LoginPage next={next} error="That key is not right." />, 401);
    setCookie(c, "lap_key", key, { httpOnly: true, sameSite: "Strict", path: "/" });
    return c.redirect(next, 303);
  });

  // ---- dashboard ----------------------------------------------------------------------------
  app.get("/", (c) => c.html(<DashboardPage d={dashboardData(s, recent)} />));
  app.get("/ui/dashboard", (c) => c.html(<DashboardLive d={dashboardData(s, recent)} />));

  // ---- models ---------------------------------------------------------------------------------
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
    const starting = s.pool.ensureStarted(id); // (the pool marks it used for LRU and idle TTL)
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

  app.post("/ui/models/:id/stop", validate("param", idParam), async (c) => {
    const { id } = c.req.valid("param");
    const row = s.registry.get(id);
    if (!row) return modelsAnswer(c, { tone: "error", text: `No model "${id}"` }, 404);
    try {
      await s.supervisor.stop(id);
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
    const res = await callApi<{ modelId: string }>(deps.fetch, c, "DELETE", `/api/models/${encodeURIComponent(id)}`);
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
    const res = await callApi<Model>(deps.fetch, c, "PATCH", `/api/models/${encodeURIComponent(id)}`, { settings });
    const rowState: Record<string, RowState> = { [id]: res.ok ? { settingsSaved: true } : { settingsErrors: res.error } };
    return modelsAnswer(c, null, res.ok ? 200 : 400, rowState);
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
    const res = await callApi<{ registered: number; models: Model[] }>(deps.fetch, c, "POST", "/api/models", { models: [entry] });
    if (!res.ok) return answer(<RegisterForm values={values} error={res.error} />, res.status === 409 ? 409 : 400);
    // The table refreshes itself from the models_update push; tell it now too, for no-socket cases.
    c.header("HX-Trigger", "lap-models");
    return answer(<RegisterForm notice={{ tone: "ok", text: `Registered ${res.data?.models?.[0]?.name ?? values.path}.` }} />);
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
    const res = await callApi<DiscoverResult>(deps.fetch, c, "POST", "/api/models/discover", {
      paths,
      recursive: values.recursive,
      ...(include.length ? { includePatterns: include } : {}),
      ...(exclude.length ? { excludePatterns: exclude } : {}),
    });
    if (!res.ok || !res.data) return answer(<DiscoverForm values={values} error={res.error} />, 400);
    c.header("HX-Trigger", "lap-models");
    return answer(<DiscoverForm values={values} result={res.data} />);
  });

  // ---- monitoring -----------------------------------------------------------------------
  const history = async (c: Context, range: RangeKey) => {
    const r = RANGES[range];
    const res = await callApi<History>(deps.fetch, c, "GET", `/api/monitoring/history?hours=${r.hours}&resolution=${r.resolution}`);
    return res.ok && res.data ? { history: res.data } : { error: res.error ?? "unknown error" };
  };
  app.get("/monitoring", validate("query", rangeSchema), async (c) => {
    const range = c.req.valid("query").range ?? "1h";
    return c.html(<MonitoringPage range={range} {...await history(c, range)} />);
  });
  app.get("/ui/monitoring/charts", validate("query", rangeSchema), async (c) => {
    const range = c.req.valid("query").range ?? "1h";
    return c.html(<Charts range={range} {...await history(c, range)} />);
  });

  // ---- logs -----------------------------------------------------------------------------------
  const LOG_PAGE = 500;
  app.get("/logs", validate("query", logQuerySchema), (c) => {
    const filter = toFilter(c.req.valid("query"));
    return c.html(<LogsPage entries={s.logs.query({ ...filter, limit: LOG_PAGE })} filter={filter} sources={s.logs.sources()} lastId={s.logs.lastId} />);
  });
  app.get("/ui/logs", validate("query", logQuerySchema), (c) => {
    const filter = toFilter(c.req.valid("query"));
    return c.html(<LogView entries={s.logs.query({ ...filter, limit: LOG_PAGE })} filter={filter} lastId={s.logs.lastId} />);
  });
  // New lines after the newest one the tail shows. X-Last-Id tells console.js where it is now,
  // even when none of the new lines matched the filter.
  app.get("/ui/logs/lines", validate("query", logQuerySchema), (c) => {
    const q = c.req.valid("query");
    c.header("X-Last-Id", String(s.logs.lastId));
    return c.html(<LogLines entries={s.logs.query({ ...toFilter(q), afterId: q.afterId ?? 0, limit: LOG_PAGE })} />);
  });
  app.get("/ui/logs/download", validate("query", logQuerySchema), (c) => {
    const text = logsAsText(s.logs.query(toFilter(c.req.valid("query"))));
    c.header("Content-Disposition", `attachment; filename="llama-async-proxy-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.log"`);
    return c.text(text);
  });

  // ---- settings ---------------------------------------------------------------------------
  app.get("/settings", validate("query", z.object({ saved: z.string().regex(/^\d\d:\d\d:\d\d UTC$/, "saved must be a time like 12:00:00 UTC").optional() })), (c) => {
    const { saved } = c.req.valid("query");
    return c.html(<SettingsPage values={configToForm(s.config.get())} loadError={s.config.loadError} configPath={s.config.path} savedAt={saved} />);
  });
  app.post("/ui/settings", async (c) => {
    const form = await c.req.parseBody();
    const parsed = parseConfigForm(form);
    const render = (p: Parameters<typeof ConfigForm>[0], status: ContentfulStatusCode) =>
      isHtmx(c) ? c.html(<ConfigForm {...p} />, status === 400 ? formStatus(c, status) : status) : c.html(<SettingsPage {...p} configPath={s.config.path} />, status);
    if (!parsed.ok) return render({ values: parsed.values, errors: parsed.errors }, 400);
    try {
      const saved = s.config.update(parsed.data);
      const savedAt = new Date().toISOString().slice(11, 19) + " UTC";
      // Without JavaScript: Post/Redirect/Get, the saved page says when.
      if (!isHtmx(c)) return c.redirect(`/settings?saved=${encodeURIComponent(savedAt)}`, 303);
      return render({ values: configToForm(saved), savedAt }, 200);
    } catch (err) {
      s.log.error("Saving the configuration failed", { error: (err as Error).message });
      return render({ values: parsed.values, formError: `Configuration save failed: ${(err as Error).message}` }, 500);
    }
  });

  // ---- playground -----------------------------------------------------------------------------
  app.get("/playground", (c) => c.html(<PlaygroundPage models={modelViews(s)} />));
  app.get("/ui/playground/models", validate("query", z.object({ model: z.string().max(200).optional() })), (c) =>
    c.html(<ModelSelect models={modelViews(s)} selected={c.req.valid("query").model} />),
  );

  return app;
}
