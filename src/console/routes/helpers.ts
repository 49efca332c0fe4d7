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
