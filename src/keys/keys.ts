/**
 * Named API keys with scopes, kept in the config file's `keys` section beside --api-key (which
 * stays an admin key). Only a hash is stored: SHA-256 of the key, hex. The keys are 32 random
 * bytes (generateKey), so a fast hash is enough; a password hash (bcrypt/scrypt) exists to slow
 * guessing of low-entropy secrets, which these are not, and it would cost every request.
 *
 * admin keys reach everything; inference keys reach /v1 and the native inference routes, for the
 * models their `models` globs match (all when absent), within their limits.
 */
import { randomToken, sha256Hex, timingSafeEqual } from "../crypto";
import { z } from "../zod";

export const KEY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const namedKeySchema = z.strictObject({
  name: z.string({ error: "keys: name must be a string" }).check(z.regex(KEY_NAME_RE, "keys: name must be 1-64 of letters, digits, '.', '_', '-'")),
  hash: z.string({ error: "keys: hash must be a string" }).check(z.regex(/^[0-9a-f]{64}$/, "keys: hash must be the SHA-256 of the key (64 hex digits)")),
  scope: z.enum(["admin", "inference"], { error: "keys: scope must be admin or inference" }),
  models: z.optional(
    z
      .array(z.string().check(z.trim(), z.minLength(1, "keys: a model pattern must not be empty"), z.maxLength(200)), {
        error: "keys: models must be an array of glob patterns",
      })
      .check(z.maxLength(100, "keys: at most 100 model patterns")),
  ),
  tokensPerDay: z.optional(z.int().check(z.gte(1), z.lte(1e12))),
  requestsPerMinute: z.optional(z.int().check(z.gte(1), z.lte(1e6))),
});
export type NamedKey = z.infer<typeof namedKeySchema>;

export const namedKeysSchema = z.array(namedKeySchema, { error: "keys must be an array of {name, hash, scope}" }).check(
  z.maxLength(1000, "at most 1000 keys"),
  z.refine((keys) => new Set(keys.map((k) => k.name)).size === keys.length, "keys: names must be unique"),
  z.refine((keys) => new Set(keys.map((k) => k.hash)).size === keys.length, "keys: two keys have the same hash"),
);

export const hashKey = (key: string) => sha256Hex(key);

/** A new key: "lap-" + 32 random bytes, base64url. Printed once; only its hash is kept. */
export const generateKey = () => `lap-${randomToken(32)}`;

/** The named key a presented secret belongs to (hash compared in constant time), or undefined. */
export function findKey(keys: readonly NamedKey[], presented: string | undefined): NamedKey | undefined {
  if (!presented || presented.length > 4096 || keys.length === 0) return undefined;
  const h = Buffer.from(hashKey(presented), "hex");
  let found: NamedKey | undefined;
  // Every entry is compared, so the time does not say which one (or whether one) matched.
  for (const k of keys) if (timingSafeEqual(Buffer.from(k.hash, "hex"), h)) found = k;
  return found;
}

/** Whether a key may use a model: its globs against the model's id and aliases. */
export function keyAllowsModel(key: Pick<NamedKey, "scope" | "models">, modelId: string, aliases: readonly string[] = []): boolean {
  if (key.scope === "admin" || !key.models) return true;
  return key.models.some((pattern) => {
    const glob = new Bun.Glob(pattern);
    return glob.match(modelId) || aliases.some((a) => glob.match(a));
  });
}
