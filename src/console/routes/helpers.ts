import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

// Small helpers shared by the console's per-page routers.

export const isHtmx = (c: Context) => c.req.header("hx-request") === "true";

/**
 * A form answered with its own errors is a normal outcome for htmx (it swaps the form back in);
 * a 4xx would only make the browser log "Failed to load resource" as a console error. Plain
 * form posts (no JavaScript) keep the honest 4xx.
 */
export const formStatus = (c: Context, status: ContentfulStatusCode): ContentfulStatusCode => (isHtmx(c) ? 200 : status);

/** Splits a textarea/input of paths or patterns: one per line or comma separated. */
export const splitList = (text: unknown, commas: boolean) =>
  typeof text === "string"
    ? text
        .split(commas ? /[\n,]/ : /\n/)
        .map((x) => x.trim())
        .filter(Boolean)
    : [];

export const str = (v: unknown) => (typeof v === "string" ? v : undefined);
