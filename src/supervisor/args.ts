import type { LlamaServerConfig } from "../config/schema";
import type { ModelSettings } from "../db/schema";
import { findRefusedFlag } from "./refused-flags";

/** What args.ts needs to know about a model (a subset of the registry row). */
export interface ModelLaunchSpec {
  id: string;
  path: string;
  mmprojPath?: string | null;
  settings: ModelSettings;
}


/**
 * gpu_layers -1 means "all layers". Builds since late 2025 accept `-ngl all`, older ones only a
 * number; a number larger than any model's layer count means the same thing everywhere.
 */
export const ALL_GPU_LAYERS = "999";

export class LaunchArgsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LaunchArgsError";
  }
}

/**
 * llama-server argv (without the binary) for one model: global config, overridden by the
 * model's settings, then the model's extra args verbatim (an array, never a shell string).
 */
export function buildServerArgs(config: LlamaServerConfig, model: ModelLaunchSpec, host: string, port: number, placementArgs: readonly string[] = []): string[] {
  const s = model.settings ?? {};
  const ctx = s.ctxSize ?? config.ctx_size;
  const batch = s.batchSize ?? config.batch_size;
  const threads = s.threads ?? config.threads;
  const gpuLayers = s.gpuLayers ?? config.gpu_layers;
  const args = ["-m", model.path, "--host", host, "--port", String(port), "-c", String(ctx), "-b", String(batch)];
  // threads -1: let llama-server decide (its own default), so omit the flag.
  if (threads !== -1) args.push("-t", String(threads));
  args.push("-ngl", gpuLayers === -1 ? ALL_GPU_LAYERS : String(gpuLayers));
  args.push("--metrics", "--alias", model.id);
  if (model.mmprojPath) args.push("--mmproj", model.mmprojPath);
  // The placement (--fit off, --tensor-split) before extraArgs: llama-server takes the last
  // occurrence of a flag, so a user's own choice in extraArgs still wins.
  args.push(...placementArgs);
  const extra = s.extraArgs ?? [];
  for (const arg of extra) {
    if (typeof arg !== "string") throw new LaunchArgsError(`extraArgs of ${model.id} must be strings`);
  }
  // Checked again at every start, whatever path the arguments came in by (API, console, import,
  // an old database row): the table and its reasons are in refused-flags.ts.
  const refused = findRefusedFlag(extra);
  if (refused) throw new LaunchArgsError(`extraArgs of ${model.id} may not set ${refused.flag}: ${refused.reason}`);
  args.push(...extra);
  return args;
}

/**
 * The address we connect to. A wildcard bind address is not a destination, so we talk to the
 * loopback of the same family.
 */
export function connectHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "[::1]";
  if (host.includes(":") && !host.startsWith("[")) return `[${host}]`;
  return host;
}

/**
 * The address we pass to --host: always a loopback address. Children are reached only through
 * the proxy (they hold a key nobody else knows, see child-keys.ts), so binding them anywhere else
 * would only expose them; a configured non-loopback `host` is therefore replaced by 127.0.0.1.
 * "localhost" may resolve to ::1 or 127.0.0.1 depending on the resolver, and llama-server binds
 * only the first answer; pinning it keeps bind, port check and health polls on one address.
 */
export function bindHost(host: string): string {
  const h = host.replace(/^\[|\]$/g, "");
  if (h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return h;
  return "127.0.0.1";
}
