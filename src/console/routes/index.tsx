/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { LoginThrottle, safeNextPath, SESSION_COOKIE } from "../../http/auth";
import { ApiError } from "../../http/errors";
import type { Services } from "../../services";
import { LoginPage, ErrorPage } from "../pages/misc";
import type { AppFetch } from "../api-client";
import { activityConsoleRoutes } from "../activity";
import { getAsset } from "../assets";
import { dashboardRoutes } from "./dashboard";
import { isHtmx } from "./helpers";
import { loginFormSchema, typedValues } from "../forms";
import { validate } from "../../http/validate";
import { logsRoutes } from "./logs";
import { modelsRoutes } from "./models";
import { monitoringRoutes } from "./monitoring";
import { playgroundRoutes } from "./playground";
import { settingsRoutes } from "./settings";

/** The client's address from Bun's server.requestIP (c.env is the server under Bun.serve). */
function clientAddress(c: Context): string {
  const server = c.env as { requestIP?: (req: Request) => { address: string } | null } | undefined;
  try {
    return server?.requestIP?.(c.req.raw)?.address ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** The console's pages (everything else it serves is under /ui/ and /static/). */
export const PAGES = ["/", "/models", "/activity", "/monitoring", "/logs", "/settings", "/playground"] as const;

/**
 * The web console: full pages, the htmx fragments they are made of, and the form posts. Every
 * fragment endpoint answers with the component the page renders, so a live refresh and a first
 * load show the same thing. Forms reach the JSON API's own validation: settings through the
 * schema of POST /api/config, model forms through the /api/models endpoints called in process.
 */
export function consoleRoutes(s: Services, deps: { fetch: AppFetch }) {
  const loginThrottle = new LoginThrottle();
  const app = new Hono();

  // Pages are unauthenticated only when the API is. With an API key, the browser proves it once
  // on /login and then carries it in an HttpOnly cookie (which /api and /v1 also accept).
  // Only the console's own paths: this router is mounted at "/", and /api and /v1 answer a
  // missing key in their own shapes.
  const requireLogin = async (c: Context, next: () => Promise<void>) => {
    if (s.auth.allowsRequest(c.req.raw.headers)) return next();
    if (c.req.method === "GET" && !c.req.path.startsWith("/ui/")) {
      return c.html(<LoginPage next={c.req.path} />, 401);
    }
    return c.text("Log in first: open /login", 401);
  };
  for (const page of PAGES) app.use(page, requireLogin);
  app.use("/ui/*", requireLogin);
  // Form posts change what we execute (serverPath): the request guard (src/http/guard.ts, rule 5)
  // lets them through only from our own pages (Sec-Fetch-Site: same-origin or an allowed Origin).
  // Console forms are small; refuse anything big before parsing it.
  app.use("/ui/*", bodyLimit({ maxSize: 256 * 1024, onError: (c) => c.text("Form too large (limit 256 kB)", 413) }));

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

  // The Activity page and the live queue (src/console/activity.tsx), behind the same login.
  app.route("/", activityConsoleRoutes(s));

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
  app.get("/login", (c) => c.html(<LoginPage next={safeNextPath(c.req.query("next"))} />));
  app.post("/login", validate("form", loginFormSchema, ({ input }, c) => c.html(<LoginPage next={safeNextPath(typedValues(input).next)} error="That key is not right." />, 400)), async (c) => {
    const form = c.req.valid("form");
    const next = safeNextPath(form.next);
    if (!s.auth.required) return c.redirect(next, 303);
    // Per client address (Bun's server.requestIP; app.request() in tests has none: one bucket).
    const address = clientAddress(c);
    const wait = loginThrottle.retryAfterSeconds(address);
    if (wait > 0) {
      c.header("Retry-After", String(wait));
      return c.html(<LoginPage next={next} error={`Too many failed attempts: try again in ${wait} s.`} />, 429);
    }
    if (!s.auth.keyMatches(form.key)) {
      loginThrottle.fail(address);
      return c.html(<LoginPage next={next} error="That key is not right." />, 401);
    }
    loginThrottle.succeed(address);
    // The cookie holds a random session token, never the key: it expires, and logging out (or a
    // restart) revokes it. Secure when the browser reached us over https, which for a proxy that
    // serves plain HTTP means through a TLS reverse proxy saying so in X-Forwarded-Proto. Trusting
    // that header can only ever add Secure (a lying client gets a cookie its browser keeps off
    // plain HTTP), so it needs no list of trusted proxies.
    const { token, expiresAt } = s.auth.createSession();
    const https = new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase() === "https";
    setCookie(c, SESSION_COOKIE, token, { httpOnly: true, sameSite: "Strict", path: "/", secure: https, expires: new Date(expiresAt), maxAge: Math.floor((expiresAt - Date.now()) / 1000) });
    return c.redirect(next, 303);
  });
  app.post("/logout", (c) => {
    s.auth.endSession(getCookie(c, SESSION_COOKIE));
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.redirect("/login", 303);
  });

  // ---- one router per page, each with its htmx fragments and form posts -------------------
  app.route("/", dashboardRoutes(s));
  app.route("/", modelsRoutes(s, deps));
  app.route("/", monitoringRoutes(deps));
  app.route("/", logsRoutes(s));
  app.route("/", settingsRoutes(s, deps));
  app.route("/", playgroundRoutes(s));

  return app;
}
