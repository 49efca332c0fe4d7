/** zod schemas of the peer and RPC worker settings (config file and POST /api/config). */
import { z } from "../zod";

/** A peer's or RPC worker's name (a model's `rpc` setting names workers by it). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const name = (label: string) =>
  z
    .string({ error: `${label} must be a string` })
    .check(z.trim(), z.regex(NAME_RE, `${label} must be 1-64 letters, digits, '.', '_' or '-'`));

/**
 * An http(s) base URL without credentials, query or fragment. Other schemes (file:, ftp:, unix:
 * ...) are refused: the proxy sends API keys and prompts there.
 */
export const baseUrl = (label: string) =>
  z.pipe(
    z.string({ error: `${label} must be a string` }).check(
      z.trim(),
      z.maxLength(2048, `${label} must be at most 2048 characters`),
      z.superRefine((v, ctx) => {
        let u: URL;
        try {
          u = new URL(v);
        } catch {
          return void ctx.addIssue({ code: "custom", message: `${label} must be an absolute http:// or https:// URL` });
        }
        if (u.protocol !== "http:" && u.protocol !== "https:") ctx.addIssue({ code: "custom", message: `${label} must use http or https, not ${u.protocol.replace(":", "")}` });
        else if (u.username || u.password) ctx.addIssue({ code: "custom", message: `${label} must not contain credentials (use apiKey)` });
        else if (u.search || u.hash) ctx.addIssue({ code: "custom", message: `${label} must not have a query or fragment` });
      }),
    ),
    // One spelling: no trailing slash, no /v1 suffix (paths are appended).
    z.transform((v: string) => v.replace(/\/+$/, "").replace(/\/v1$/, "")),
  );

const apiKey = z.string({ error: "apiKey must be a string" }).check(
  z.minLength(1, "apiKey must not be empty"),
  z.maxLength(512, "apiKey must be at most 512 characters"),
  z.refine((k) => /^[\x21-\x7e]+$/.test(k), "apiKey must be printable ASCII without spaces"),
);

const glob = z
  .string({ error: "models entries must be glob strings" })
  .check(z.trim(), z.minLength(1, "a models glob must not be empty"), z.maxLength(200, "a models glob must be at most 200 characters"));

/** One entry of `peers`: another instance of this product or any OpenAI-compatible server. */
export const peerConfigSchema = z.strictObject({
  name: name("peer name"),
  url: baseUrl("peer url"),
  apiKey: z.optional(apiKey),
  /** Only the peer's models matching one of these globs are routed there (default: all). */
  models: z.optional(z.array(glob, { error: "models must be an array of glob patterns" }).check(z.maxLength(100, "at most 100 model globs per peer"))),
  /** Higher wins when the same model is on several hosts and neither runs it or is less busy. */
  priority: z.optional(z.number({ error: "priority must be a number" }).check(z.int("priority must be a whole number"), z.gte(-1000), z.lte(1000))),
});
export type PeerConfig = z.infer<typeof peerConfigSchema>;

const unique = <T extends { name: string }>(label: string) => (list: T[], ctx: z.core.$RefinementCtx<T[]>) => {
  const seen = new Set<string>();
  for (const p of list) {
    const key = p.name.toLowerCase();
    if (seen.has(key)) ctx.addIssue({ code: "custom", message: `${label} name "${p.name}" is used twice` });
    seen.add(key);
  }
};

export const peersSchema = z
  .array(peerConfigSchema, { error: "peers must be an array" })
  .check(z.maxLength(32, "at most 32 peers"), z.superRefine(unique<PeerConfig>("peer")));

/** One entry of `rpcWorkers`: a host running `llama-async-proxy worker` (which supervises rpc-server). */
export const rpcWorkerConfigSchema = z.strictObject({
  name: name("rpcWorkers name"),
  url: baseUrl("rpcWorkers url"),
  // The worker API always needs a key: it reports where an unauthenticated rpc-server listens.
  apiKey: apiKey,
});
export type RpcWorkerConfig = z.infer<typeof rpcWorkerConfigSchema>;

export const rpcWorkersSchema = z
  .array(rpcWorkerConfigSchema, { error: "rpcWorkers must be an array" })
  .check(z.maxLength(32, "at most 32 RPC workers"), z.superRefine(unique<RpcWorkerConfig>("rpcWorkers")));
