/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "../../zod";
import { validate } from "../../http/validate";
import type { Services } from "../../services";
import { SettingsPage } from "../pages/settings";
import { ConfigForm } from "../partials/config-form";
import { configToForm } from "../data";
import { apiFor, attempt, fieldErrorsOfDetails, type AppFetch } from "../api-client";
import { CONFIG_FIELDS, configFormSchema, fieldErrors, typedValues } from "../forms";
import { formStatus, isHtmx } from "./helpers";

/** The settings page and its form post (validated by the schema of POST /api/config, saved through it). */
export function settingsRoutes(s: Services, deps: { fetch: AppFetch }) {
  const app = new Hono();
  app.get("/settings", validate("query", z.object({ saved: z.optional(z.string().check(z.regex(/^\d\d:\d\d:\d\d UTC$/, "saved must be a time like 12:00:00 UTC"))) })), (c) => {
    const { saved } = c.req.valid("query");
    return c.html(<SettingsPage values={configToForm(s.config.get())} loadError={s.config.loadError} configPath={s.config.path} savedAt={saved} signedIn={s.auth.required} />);
  });
  const render = (c: Context, p: Parameters<typeof ConfigForm>[0], status: ContentfulStatusCode) =>
    isHtmx(c) ? c.html(<ConfigForm {...p} />, status === 400 ? formStatus(c, status) : status) : c.html(<SettingsPage {...p} configPath={s.config.path} signedIn={s.auth.required} />, status);
  app.post(
    "/ui/settings",
    // The schema of POST /api/config (console/forms.ts): errors next to their fields, as typed.
    validate("form", configFormSchema, ({ error, input }, c) => render(c, { values: typedValues(input), errors: fieldErrors(error) }, 400)),
    async (c) => {
      // POST /api/config through the typed client: its serverPath check (it decides what we
      // execute), the save, and its messages, with no second copy of them here.
      const res = await attempt(apiFor(c, deps.fetch).updateConfig(c.req.valid("form")));
      if (res.ok) {
        const savedAt = new Date().toISOString().slice(11, 19) + " UTC";
        // Without JavaScript: Post/Redirect/Get, the saved page says when.
        if (!isHtmx(c)) return c.redirect(`/settings?saved=${encodeURIComponent(savedAt)}`, 303);
        return render(c, { values: configToForm(res.data), savedAt }, 200);
      }
      const values = typedValues(await c.req.parseBody());
      // A refusal naming a field (serverPath: not a llama-server) goes next to that field.
      const errors = res.code === "VALIDATION_ERROR" ? fieldErrorsOfDetails(res.details, CONFIG_FIELDS) : null;
      if (errors) return render(c, { values, errors }, 400);
      return render(c, { values, formError: res.error }, res.status >= 500 ? 500 : 400);
    },
  );

  return app;
}
