/** zod schemas of every model-related request body (the single source of those input types). */
import { rangeField, wholeNumberField, z } from "../zod";
import { NAME_RE as WORKER_NAME_RE } from "../peers/schema";
import { findRefusedFlag } from "../supervisor/refused-flags";

const text = (label: string, max: number) =>
  z.string({ error: `${label} must be a string` }).check(z.trim(), z.minLength(1, `${label} must not be empty`), z.maxLength(max, `${label} must be at most ${max} characters`));

/** The :id of the /api/models/:id routes. */
export const modelIdParam = z.object({ id: z.string().check(z.minLength(1, "Model id is required"), z.maxLength(200, "Model id is too long")) });

/** What slugify() produces; an explicit id must already look like one. */
export const MODEL_ID_RE = /^[a-z0-9][a-z0-9._-]{0,119}$/;

const alias = z.string({ error: "aliases must be strings" }).check(
  z.trim(),
  z.minLength(1, "an alias must not be empty"),
  z.maxLength(200, "an alias must be at most 200 characters"),
  z.refine((s) => !/[\s\u0000]/.test(s), "an alias must not contain whitespace"),
);

/** Request parameters the proxy routes by: rewriting may never touch them. */
export const PROTECTED_PARAMS = new Set(["model"]);

const paramName = z.string({ error: "parameter names must be strings" }).check(
  z.trim(),
  z.minLength(1, "a parameter name must not be empty"),
  z.maxLength(200, "a parameter name must be at most 200 characters"),
  z.refine((k) => !PROTECTED_PARAMS.has(k), "the model parameter cannot be rewritten (the proxy routes by it)"),
);

const paramMap = (label: string) =>
  z
    .record(z.string().check(z.maxLength(200, `${label}: a parameter name must be at most 200 characters`)), z.json(), { error: `${label} must be an object of parameter: value` })
    .check(
      z.refine((m) => !Object.keys(m).some((k) => PROTECTED_PARAMS.has(k)), `${label}: the model parameter cannot be rewritten (the proxy routes by it)`),
      z.refine((m) => Object.keys(m).length <= 100, `${label}: at most 100 parameters`),
      z.refine((m) => JSON.stringify(m).length <= 16_384, `${label}: at most 16 KiB of JSON`),
    );

/** defaults (when absent), overrides (always), strip (removed): see src/proxy/rewrite.ts. */
export const rewriteRulesSchema = z.strictObject({
  defaults: z.optional(paramMap("rewrite.defaults")),
  overrides: z.optional(paramMap("rewrite.overrides")),
  strip: z.optional(z.array(paramName, { error: "rewrite.strip must be an array of parameter names" }).check(z.maxLength(100, "rewrite.strip: at most 100 parameters"))),
});

/** Per-model overrides of the global llama-server config (stored in models.settings). */
export const modelSettingsSchema = z.strictObject({
  ctxSize: rangeField("ctxSize", 0, 4_194_304),
  batchSize: rangeField("batchSize", 1, 1_048_576),
  threads: wholeNumberField("threads").check(z.refine((n) => n === -1 || (n >= 1 && n <= 1024), "threads must be -1 (auto) or between 1 and 1024")),
  gpuLayers: wholeNumberField("gpuLayers").check(z.refine((n) => n === -1 || (n >= 0 && n <= 100_000), "gpuLayers must be -1 (all) or between 0 and 100000")),
  extraArgs: z
    .array(
      z.string({ error: "extraArgs must be an array of strings" }).check(
        z.maxLength(4096, "an extra argument must be at most 4096 characters"),
        z.refine((s) => !s.includes("\u0000"), "an extra argument must not contain NUL"),
      ),
      { error: "extraArgs must be an array of strings (one argv entry each)" },
    )
    .check(
      z.maxLength(200, "at most 200 extra arguments"),
      // Refused here, not only at start: a model saved with them could never start.
      z.superRefine((args, ctx) => {
        const refused = findRefusedFlag(args);
        if (refused) ctx.addIssue({ code: "custom", message: `extraArgs may not set ${refused.flag}: ${refused.reason}` });
      }),
    ),
  aliases: z
    .array(alias, { error: "aliases must be an array of strings" })
    .check(
      z.maxLength(50, "at most 50 aliases"),
      z.refine((a) => new Set(a.map((s) => s.toLowerCase())).size === a.length, "aliases must not repeat"),
    ),
  autoStart: z.boolean({ error: "autoStart must be true or false" }),
  idleTimeoutSeconds: rangeField("idleTimeoutSeconds", 0, 30 * 24 * 3600),
  /** false: never save or restore this model's KV cache (global switch: kvCacheDiskMiB 0). */
  kvCache: z.boolean({ error: "kvCache must be true or false" }),
  pinned: z.boolean({ error: "pinned must be true or false" }),
  allowPartialOffload: z.boolean({ error: "allowPartialOffload must be true or false" }),
  rewrite: rewriteRulesSchema,
  rpc: z.union(
    [
      z.literal("all"),
      z
        .array(z.string({ error: "rpc entries must be worker names" }).check(z.regex(WORKER_NAME_RE, "rpc entries must be rpcWorkers names")), { error: 'rpc must be "all" or a list of rpcWorkers names' })
        .check(
          z.minLength(1, "rpc must name at least one worker"),
          z.maxLength(32, "at most 32 RPC workers"),
          z.refine((a) => new Set(a).size === a.length, "rpc must not name a worker twice"),
        ),
    ],
    { error: 'rpc must be "all" or a list of rpcWorkers names' },
  ),
  tensorSplit: z
    .array(z.number({ error: "tensorSplit entries must be numbers" }).check(z.gte(0, "tensorSplit entries must be 0 or more"), z.lte(1_000_000)), { error: "tensorSplit must be an array of numbers" })
    .check(z.minLength(1, "tensorSplit must not be empty"), z.maxLength(64, "at most 64 tensorSplit entries")),
});

/** PATCH: every setting optional; null removes an override (back to the global default). */
export const modelSettingsPatchSchema = z.strictObject(
  Object.fromEntries(Object.entries(modelSettingsSchema.shape).map(([k, v]) => [k, z.optional(z.nullable(v))])) as {
    [K in keyof typeof modelSettingsSchema.shape]: z.ZodMiniOptional<z.ZodMiniNullable<(typeof modelSettingsSchema.shape)[K]>>;
  },
);

/**
 * One entry of POST /api/models. The seed API's client sends Partial<Model>, so every Model
 * field is accepted; the runtime ones (status, loadedAt, ...) are ignored. Unknown keys are an
 * error, so a typo ("contextsize") is reported instead of silently dropped.
 */
export const registerEntrySchema = z.strictObject({
  id: z.optional(z.string({ error: "id must be a string" }).check(z.regex(MODEL_ID_RE, "id must be lowercase letters, digits, '.', '_' or '-' (at most 120)"))),
  name: z.optional(text("name", 200)),
  description: z.optional(z.string({ error: "description must be a string" }).check(z.maxLength(2000, "description must be at most 2000 characters"))),
  path: text("path", 4096).check(z.refine((s) => !s.includes("\u0000"), "path must not contain NUL")),
  family: z.optional(text("family", 100)),
  version: z.optional(z.string({ error: "version must be a string" }).check(z.maxLength(100))),
  format: z.optional(text("format", 20)),
  quantization: z.optional(text("quantization", 50)),
  contextSize: z.optional(rangeField("contextSize", 1, 16_777_216)),
  size: z.optional(z.number()),
  settings: z.optional(z.partial(modelSettingsSchema)),
  // Runtime fields of Model: accepted (a client may post back what GET returned) and ignored.
  status: z.optional(z.string()),
  loadedAt: z.optional(z.string()),
  lastUsed: z.optional(z.string()),
  memoryUsage: z.optional(z.number()),
});
export type RegisterEntry = z.infer<typeof registerEntrySchema>;

export const registerBodySchema = z.strictObject({
  models: z
    .array(registerEntrySchema, { error: "models must be an array of models" })
    .check(z.minLength(1, "models must list at least one model"), z.maxLength(1000, "at most 1000 models per request")),
});

export const patchModelSchema = z
  .strictObject({
    name: z.optional(text("name", 200)),
    description: z.optional(z.nullable(z.string({ error: "description must be a string" }).check(z.maxLength(2000, "description must be at most 2000 characters")))),
    family: z.optional(text("family", 100)),
    version: z.optional(z.nullable(z.string({ error: "version must be a string" }).check(z.maxLength(100, "version must be at most 100 characters")))),
    contextSize: z.optional(z.nullable(rangeField("contextSize", 1, 16_777_216))),
    mmprojPath: z.optional(z.nullable(text("mmprojPath", 4096))),
    settings: z.optional(modelSettingsPatchSchema),
  })
  .check(z.refine((b) => Object.keys(b).length > 0, "Nothing to change: send at least one field"));
export type ModelPatch = z.infer<typeof patchModelSchema>;

const pattern = z.string({ error: "patterns must be strings" }).check(z.trim(), z.minLength(1, "a pattern must not be empty"), z.maxLength(500));

export const discoverBodySchema = z.strictObject({
  paths: z.optional(z.array(text("paths entry", 4096), { error: "paths must be an array of folder paths" }).check(z.minLength(1, "paths must not be empty"), z.maxLength(100))),
  recursive: z.optional(z.boolean({ error: "recursive must be true or false" })),
  includePatterns: z.optional(z.array(pattern, { error: "includePatterns must be an array of glob patterns" }).check(z.minLength(1, "includePatterns must not be empty"), z.maxLength(100))),
  excludePatterns: z.optional(z.array(pattern, { error: "excludePatterns must be an array of glob patterns" }).check(z.maxLength(100))),
  maxDepth: z.optional(rangeField("maxDepth", 0, 256)),
});
export type DiscoverBody = z.infer<typeof discoverBodySchema>;
