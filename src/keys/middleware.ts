import type { Context, MiddlewareHandler } from "hono";
import { presentedCredentials, type Authenticator, type Identity } from "../http/auth";
import { ApiError } from "../http/errors";
import { openAiFail } from "../http/openai";

const IDENTITY = "lapIdentity";

/**
 * /v1 and native inference routes: admin credentials or any named key pass (401 in OpenAI's shape
 * otherwise). Who it was is kept on the context for the proxy (model globs, limits) and the
 * activity log (the key's name).
 */
export function inferenceAuth(auth: Authenticator): MiddlewareHandler {
  return async (c, next) => {
    const who = auth.identify(presentedCredentials(c.req.raw.headers));
    if (!who) {
      c.header("WWW-Authenticate", 'Bearer realm="llama-async-proxy"');
      return openAiFail(c, new ApiError("UNAUTHORIZED", "Invalid or missing API key"));
    }
    c.set(IDENTITY as never, who as never);
    c.set("apiKeyName" as never, (who.name ?? undefined) as never);
    await next();
  };
}

/** The identity inferenceAuth found (undefined on routes it does not guard, e.g. in unit tests of the router). */
export const identityOf = (c: Context): Identity | undefined => (c.var as Record<string, unknown>)[IDENTITY] as Identity | undefined;
