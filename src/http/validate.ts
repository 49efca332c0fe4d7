import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { ZodType, ZodError } from "zod";
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

/**
 * zValidator with our error handling: a failed validation throws an ApiError, so the single
 * app.onError writes the VALIDATION_ERROR envelope with the zod issues in `details`.
 */
export function validate<Target extends keyof ValidationTargets, Schema extends ZodType>(
  target: Target,
  schema: Schema,
  message?: string,
) {
  return zValidator(target, schema, (result) => {
    if (!result.success) {
      throw new ApiError(
        "VALIDATION_ERROR",
        message ?? MESSAGES[target] ?? "Invalid request",
        describeIssues(result.error as unknown as ZodError),
      );
    }
  });
}
