/**
 * The one import of zod for the product: `zod/mini`, with English messages.
 *
 * Why mini and not `import { z } from "zod"`: the classic API attaches every method (.min, .optional,
 * .refine, ...) to each schema instance when it is built, so importing it and building our schemas
 * cost ~20 ms of CPU and ~15 MB of RSS before the first request could be answered (compiled probes,
 * bench/RESULTS.md "#16"). zod/mini builds the same core schemas with plain functions
 * (`z.optional(s)`, `s.check(z.minLength(1))`), parses the same way and reports the same issues.
 *
 * zod/mini loads no locale, so without this every issue would read "Invalid input": the API's
 * validation messages (and the tests that read them) are the English ones classic zod writes.
 */
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";

z.config(en());

export { z };
/** Any schema (mini or not) and the error a failed parse carries, for code that only passes them on. */
export type ZodType<Output = unknown> = z.core.$ZodType<Output>;
export type ZodError = z.core.$ZodError;

// ---- Fields several schemas share (one definition, so their messages cannot drift apart) ----

/** A JSON number that must be whole: "<label> is required / must be a number / must be a whole number". */
export const wholeNumberField = (label: string) =>
  z.number({ error: (iss) => (iss.input === undefined ? `${label} is required` : `${label} must be a number`) })
    .check(z.int(`${label} must be a whole number`));

/** A whole number within [min, max]: "<label> must be between <min> and <max>". */
export const rangeField = (label: string, min: number, max: number) =>
  wholeNumberField(label).check(z.gte(min, `${label} must be between ${min} and ${max}`), z.lte(max, `${label} must be between ${min} and ${max}`));

/** A query-string parameter of digits, as a number within [min, max]. */
export const queryWholeNumber = (label: string, min: number, max: number) =>
  z
    .pipe(z.string().check(z.regex(/^\d+$/, `${label} must be a whole number`)), z.transform(Number))
    .check(z.refine((n) => n >= min && n <= max, `${label} must be between ${min} and ${max}`));
