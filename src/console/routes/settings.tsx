/** @jsxImportSource hono/jsx */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { validate } from "../../http/validate";
import type { Services } from "../../services";
import { serverPathChangeRefusal } from "../../supervisor/binary";
import { SettingsPage } from "../pages/settings";
import { ConfigForm } from "../partials/config-form";
import { configToForm } from "../data";
import { configFormSchema, fieldErrors, typedValues } from "../forms";
import { formStatus, isHtmx } from "./helpers";

/** The settings page and its form post (validated by the schema of POST /api/config). */
export function settingsRoutes(s: Services) {
  const app = new Hono();
  app.get("/settings", validate("query", z.object({ saved: z.string().regex(/^\d\d:\d\d:\d\d UTC$/, "saved must be a time like 12:00:00 UTC").optional() })), (c) => {
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
      const data = c.req.valid("form");
      const values = typedValues(await c.req.parseBody());
      // The same serverPath check as POST /api/config: it decides what we execute.
      const refusal = await serverPathChangeRefusal(s.config.get().serverPath, data.serverPath);
      if (refusal) return render(c, { values, errors: { serverPath: refusal } }, 400);
      try {
        const saved = s.config.update(data);
        const savedAt = new Date().toISOString().slice(11, 19) + " UTC";
        // Without JavaScript: Post/Redirect/Get, the saved page says when.
        if (!isHtmx(c)) return c.redirect(`/settings?saved=${encodeURIComponent(savedAt)}`, 303);
        return render(c, { values: configToForm(saved), savedAt }, 200);
      } catch (err) {
        s.log.error("Saving the configuration failed", { error: (err as Error).message });
        return render(c, { values, formError: `Configuration save failed: ${(err as Error).message}` }, 500);
      }
    },
  );

  return app;
}
