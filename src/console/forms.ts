// The console's form posts as zod schemas, for `validate("form", schema, onInvalid)`: each one
// turns the posted strings into the body the API takes and checks every field with the API's own
// schema (config/schema.ts, models/schema.ts), so the form can show each problem next to its
// field, and what reaches the API is what the API would accept. Pure: unit-tested as tables.
import { z, type ZodError, type ZodType } from "../zod";
import { configUpdateSchema, extraConfigShape, referenceConfigShape } from "../config/schema";
import { discoverBodySchema, modelSettingsPatchSchema, modelSettingsSchema, registerEntrySchema, rewriteRulesSchema } from "../models/schema";

/** One message per form field ("_form" for a problem of the whole form). */
export type FieldErrors = Partial<Record<string, string>>;
/** What a form shows: the raw strings as typed, so a bad value is shown back as it was. */
export type FormValues = Record<string, string>;

/** The first message of each field (by the first element of the issue's path). */
export function fieldErrors(error: ZodError): FieldErrors {
  const errors: FieldErrors = {};
  for (const issue of error.issues) {
    const field = issue.path.length ? String(issue.path[0]) : "_form";
    errors[field] ??= issue.message;
  }
  return errors;
}

/** The posted fields as typed, for showing back (a repeated field or a file upload is not text: left out). */
export function typedValues(input: unknown): FormValues {
  const values: FormValues = {};
  if (input && typeof input === "object") for (const [k, v] of Object.entries(input)) if (typeof v === "string") values[k] = v;
  return values;
}

/**
 * One form field: text, at most `max` characters. A field sent twice arrives as an array and a
 * file upload as a File: both are refused with the field's name rather than guessed at.
 */
const formText = (label: string, max = 4096) =>
  z.string({ error: `${label} must be a single text value` }).check(z.maxLength(max, `${label} is too long (at most ${max} characters)`));

/** A checkbox: sent ("1") when checked, absent when not. */
const checkbox = (label: string) => z.pipe(z.optional(formText(label, 10)), z.transform((v) => v === "1"));

/** Digits become a number; anything else is passed on as typed so the API's schema names the problem. */
const numberOrText = (text: string) => (/^[+-]?\d+(\.\d+)?$/.test(text) ? Number(text) : text);

/** Splits a textarea/input of paths or patterns: one per line, or also comma separated. */
export const splitList = (text: string | undefined, commas: boolean) =>
  (text ?? "")
    .split(commas ? /[\n,]/ : /\n/)
    .map((x) => x.trim())
    .filter(Boolean);

// ---- Settings page (POST /ui/settings -> the schema of POST /api/config) --------------------

/** Fields taken as typed (not numbers). */
const CONFIG_TEXT_FIELDS = new Set(["host", "basePath", "serverPath", "activitySessionHeaders"]);
/** The settings form's fields: the seed API's eight and the proxy's own settings. */
export const CONFIG_FIELDS = [...Object.keys(referenceConfigShape), ...Object.keys(extraConfigShape)];

/**
 * The settings form -> the POST /api/config body, validated by that route's schema. Numeric
 * fields become numbers when they look like one and stay strings otherwise (zod then says "must
 * be a number"); an empty field is absent, so required ones say "is required". Unknown fields
 * are dropped rather than trusted.
 */
export const configFormSchema = z.pipe(
  z.pipe(
    z.object(Object.fromEntries(CONFIG_FIELDS.map((k) => [k, z.optional(formText(k))])) as Record<string, z.ZodMiniOptional<z.ZodMiniString>>),
    z.transform((form: Record<string, string | undefined>) => {
      const body: Record<string, unknown> = {};
      for (const key of CONFIG_FIELDS) {
        const raw = form[key];
        if (raw === undefined || raw.trim() === "") continue;
        body[key] = CONFIG_TEXT_FIELDS.has(key) ? raw : numberOrText(raw.trim());
      }
      return body;
    }),
  ),
  configUpdateSchema,
);

// ---- Per-model settings editor (POST /ui/models/:id/settings -> PATCH /api/models/:id) ------

const S = modelSettingsSchema.shape;
const R = rewriteRulesSchema.shape;

/**
 * One field that feeds the API: its text as posted (absent allowed, at most `max` characters),
 * turned by `toApi` into the value the API takes, then checked by the API's own schema for it.
 */
const formField = <T extends ZodType>(label: string, max: number, toApi: (text: string | undefined, ctx: z.core.ParsePayload) => unknown, api: T) =>
  z.pipe(z.pipe(z.optional(formText(label, max)), z.transform(toApi)), api);

/** An empty field means "use the global setting": null, which PATCH reads as "remove the override". */
const blankIsGlobal = <T extends ZodType>(label: string, api: T) =>
  formField(label, 40, (v) => {
    const t = (v ?? "").trim();
    return t === "" ? null : numberOrText(t);
  }, z.nullable(api));

/** A list field (aliases: commas; extra arguments: lines): empty = null (no override). */
const listField = <T extends ZodType>(label: string, commas: boolean, api: T) =>
  formField(label, 64 * 1024, (v) => {
    const list = splitList(v, commas);
    return list.length ? list : null;
  }, z.nullable(api));

/** A JSON object of parameter: value (rewrite defaults / overrides); empty = none. */
const jsonParams = <T extends ZodType>(label: string, api: T) =>
  formField(label, 16 * 1024, (v, ctx) => {
    const t = (v ?? "").trim();
    if (t === "") return undefined;
    try {
      return JSON.parse(t) as unknown;
    } catch (err) {
      // mini's transform has no ctx.addIssue: push the issue it would have added
      ctx.issues.push({ code: "custom", message: `${label}: not valid JSON (${(err as Error).message})`, input: v });
      return z.NEVER;
    }
  }, api);

/** RPC workers: "all", or worker names separated by commas; empty = none (runs on this host). */
const rpcField = formField("RPC workers", 4096, (v) => {
  const t = (v ?? "").trim();
  if (t === "") return null;
  return t.toLowerCase() === "all" ? "all" : splitList(t, true);
}, z.nullable(S.rpc));

/** Tensor split: proportions separated by commas ("3, 1"); empty = llama-server's own split. */
const tensorSplitField = formField("Tensor split", 1024, (v) => {
  const list = splitList(v, true);
  return list.length ? list.map(numberOrText) : null;
}, z.nullable(S.tensorSplit));

export type ModelSettingsPatch = z.output<typeof modelSettingsPatchSchema>;

/**
 * The per-model settings editor -> the `settings` of PATCH /api/models/:id, every field checked
 * by the API's own schema for that setting. An emptied field means "use the global value"
 * (null removes the override). Checkboxes: absent = unchecked. "Keep conversations" checked is
 * the default, so it stores no override; unchecked is `false` for this model. The rewrite
 * rules are one setting: empty defaults, overrides and strip together mean no rules (null).
 */
export const modelSettingsFormSchema = z.pipe(
  z.object({
    ctxSize: blankIsGlobal("Context size", S.ctxSize),
    batchSize: blankIsGlobal("Batch size", S.batchSize),
    threads: blankIsGlobal("Threads", S.threads),
    gpuLayers: blankIsGlobal("GPU layers", S.gpuLayers),
    idleTimeoutSeconds: blankIsGlobal("Idle timeout", S.idleTimeoutSeconds),
    aliases: listField("Aliases", true, S.aliases),
    extraArgs: listField("Extra arguments", false, S.extraArgs),
    rpc: rpcField,
    tensorSplit: tensorSplitField,
    autoStart: checkbox("Start with the proxy"),
    kvCache: z.pipe(checkbox("Keep conversations"), z.transform((on: boolean) => (on ? null : false))),
    defaults: jsonParams("Defaults", R.defaults),
    overrides: jsonParams("Overrides", R.overrides),
    strip: listField("Strip", true, R.strip._zod.def.innerType),
  }),
  z.transform(({ defaults, overrides, strip, ...rest }): ModelSettingsPatch => {
    const rewrite = { ...(defaults && Object.keys(defaults).length ? { defaults } : {}), ...(overrides && Object.keys(overrides).length ? { overrides } : {}), ...(strip ? { strip } : {}) };
    return { ...rest, rewrite: Object.keys(rewrite).length ? rewrite : null };
  }),
);

/** The fit hint's query (the editor's context and GPU layers as typed): blank = the model's setting. */
const formInt = (label: string, min: number, max: number) =>
  z.optional(
    z
      .pipe(
        z.string().check(
          z.trim(),
          z.maxLength(12, `${label} is too long`),
          z.refine((v) => v === "" || /^-?\d+$/.test(v), `${label} must be a whole number`),
        ),
        z.transform((v: string) => (v === "" ? undefined : Number(v))),
      )
      .check(z.refine((n) => n === undefined || (n >= min && n <= max), `${label} must be between ${min} and ${max}`)),
  );
export const fitFormQuery = z.object({ ctxSize: formInt("Context size", 0, 4_194_304), gpuLayers: formInt("GPU layers", -1, 100_000) });

// ---- Register and discover (POST /api/models, POST /api/models/discover) --------------------

const E = registerEntrySchema.shape;
/** An optional text field: blank = not given (the API then reads it from the file). */
const optionalText = <T extends ZodType>(label: string, max: number, api: T) => formField(label, max, (v) => v?.trim() || undefined, api);

export const registerFormSchema = z.object({
  path: z.pipe(
    z.pipe(z.optional(formText("The file path")), z.transform((v) => v?.trim() ?? "")).check(z.refine((v) => v !== "", "The file path is required.")),
    E.path,
  ),
  name: optionalText("Name", 200, E.name),
  family: optionalText("Family", 100, E.family),
  description: optionalText("Description", 2000, E.description),
});

const D = discoverBodySchema.shape;
export const discoverFormSchema = z.pipe(
  z.object({
    paths: z.pipe(
      z.pipe(z.optional(formText("Folders", 64 * 1024)), z.transform((v) => splitList(v, false))).check(z.refine((l) => l.length > 0, "Give at least one folder.")),
      D.paths._zod.def.innerType,
    ),
    recursive: checkbox("Include sub-folders"),
    includePatterns: listField("Include patterns", true, D.includePatterns._zod.def.innerType),
    excludePatterns: listField("Exclude patterns", true, D.excludePatterns._zod.def.innerType),
  }),
  z.transform(({ includePatterns, excludePatterns, ...rest }) => ({
    ...rest,
    ...(includePatterns ? { includePatterns } : {}),
    ...(excludePatterns ? { excludePatterns } : {}),
  })),
);

// ---- Small forms --------------------------------------------------------------------------

export const loginFormSchema = z.object({ key: z.optional(formText("The key")), next: z.optional(formText("next", 2048)) });
/** Remove: "1" once the user confirmed (the page without JavaScript asks first). */
export const confirmFormSchema = z.object({ confirmed: z.optional(formText("confirmed", 10)) });
