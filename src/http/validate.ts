import { zValidator } from "@hono/zod-validator";
import type { Context, ValidationTargets } from "hono";
import { z, type ZodType, type ZodError } from "../zod";
import { ApiError } from "./errors";

/** Human-readable one-line summary of zod issues: "port: Port must be between 1 and 65535; ...". */
export function describeIssues(error: ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length ? issue.path.join(".") : "";
      return where && !issue.message.toLowerCase().startsWith(where.toLowerCase())
        ? `${where}: ${issue.message}`
        : issue.message;
    })
    .join("; ");
}

const MESSAGES: Partial<Record<keyof ValidationTargets, string>> = {
  json: "Invalid request data",
  query: "Invalid query parameters",
  param: "Invalid path parameters",
  form: "Invalid form data",
};

/** A failed validation: the zod error and the input as it arrived (the form's fields as posted). */
export interface InvalidInput {
  error: ZodError;
  input: unknown;
}

/**
 * What a route answers instead of the envelope when its input is invalid: the console's forms
 * re-render themselves with the field errors (an HTML form, not a JSON client, reads the answer).
 */
export type OnInvalid = (invalid: InvalidInput, c: Context) => Response | Promise<Response>;

type SafeParse = (value: unknown) => { success: boolean };
/**
 * The schema's own safeParse (a classic schema keeps its classic ZodError for onInvalid handlers),
 * synchronously; only a schema with an async check or transform takes safeParseAsync.
 *
 * Why not zValidator's default, safeParseAsync: in async mode zod/mini's (core) transform always
 * answers a promise, while classic zod's ran inline, and an object gathers its keys' results in the
 * order they settle. So a mini schema with a transform parsed async would put that key's issue
 * after the others' (changing the VALIDATION_ERROR details text) and its key last in the data.
 * Parsed sync, mini and classic give the same issues and data in the same order (#16).
 */
function parseInOrder(schema: unknown, value: unknown) {
  const s = schema as { safeParse: SafeParse; safeParseAsync: (value: unknown) => Promise<{ success: boolean }> };
  try {
    return s.safeParse(value);
  } catch (err) {
    if (err instanceof z.core.$ZodAsyncError) return s.safeParseAsync(value);
    throw err;
  }
}

/**
 * zValidator with our error handling: a failed validation throws an ApiError, so the single
 * app.onError writes the VALIDATION_ERROR envelope with the zod issues in `details`. With an
 * `onInvalid` handler (the console's forms), that handler answers instead.
 */
export function validate<Target extends keyof ValidationTargets, Schema extends ZodType>(
  target: Target,
  schema: Schema,
  messageOrOnInvalid?: string | OnInvalid,
) {
  const message = typeof messageOrOnInvalid === "string" ? messageOrOnInvalid : undefined;
  const onInvalid = typeof messageOrOnInvalid === "function" ? messageOrOnInvalid : undefined;
  return zValidator(target, schema, (result, c) => {
    if (!result.success) {
      if (onInvalid) return onInvalid({ error: result.error as unknown as ZodError, input: result.data }, c);
      throw new ApiError(
        "VALIDATION_ERROR",
        message ?? MESSAGES[target] ?? "Invalid request",
        describeIssues(result.error as unknown as ZodError),
      );
    }
  }, { validationFunction: parseInOrder as never });
}
