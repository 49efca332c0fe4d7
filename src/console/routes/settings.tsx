/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { validate } from "../../http/validate";
import type { Services } from "../../services";
import { serverPathChangeRefusal } from "../../supervisor/binary";
import { SettingsPage } from "../pages/settings";
import { ConfigForm } from "../partials/config-form";
import { configToForm, parseConfigForm } from "../data";
import { formStatus, isHtmx } from "./helpers";

/** The settings page and its form post (validated by the schema of POST /api/config). */
export function settingsRoutes(s: Services) {
  const app = new Hono();
  app.get("/settings", validate("query", z.object({ saved: z.string().regex(/^\d\d:\d\d:\d\d UTC$/, "saved must be a time like 12:00:00 UTC").optional() })), (c) => {
    const { saved } = c.req.valid("query");
    return c.html(<SettingsPage values={configToForm(s.config.get())} loadError={s.config.loadError} configPath={s.config.path} savedAt={saved} signedIn={s.auth.required} />);
  });
  app.post("/ui/settings", async (c) => {
    const form = await c.req.parseBody();
    const parsed = parseConfigForm(form);
    const render = (p: Parameters<typeof ConfigForm>[0], status: ContentfulStatusCode) =>
      isHtmx(c) ? c.html(<ConfigForm {...p} />, status === 400 ? formStatus(c, status) : status) : c.html(<SettingsPage {...p} configPath={s.config.path} signedIn={s.auth.required} />, status);
    if (!parsed.ok) return render({ values: parsed.values, errors: parsed.errors }, 400);
    // The same serverPath check as POST /api/config: it decides what we execute.
    const refusal = await serverPathChangeRefusal(s.config.get().serverPath, parsed.data.serverPath);
    if (refusal) return render({ values: parsed.values, errors: { serverPath: refusal } }, 400);
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

  return app;
}
