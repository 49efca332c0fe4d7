/**
 * Import of a llama-swap configuration (config.yaml). Two steps, so the dry run and the real
 * import show the same thing:
 * - planLlamaSwapImport(text): pure. Parses the YAML, expands macros the way llama-swap does
 *   (./llama-swap-macros.ts), maps each model whose cmd runs llama-server onto a registration,
 *   and lists everything it cannot bring over with the reason.
 *   llama-swap's `peers:` and the models it only proxies to another host (a remote `proxy` whose
 *   cmd is not a llama-server we could run) become our `peers`.
 * - applyLlamaSwapPlan(services, plan): registers the planned models one by one through the same
 *   registerModels() as POST /api/models (file checks, id/path/alias conflicts), so one bad entry
 *   is reported instead of failing the rest, adds the planned peers not configured yet, and
 *   applies the global settings it maps.
 */
import { basename } from "node:path";
import type * as Yaml from "yaml";
import type { ConfigUpdate } from "../config/schema";
import { extraConfigShape } from "../config/schema";
import { z } from "../zod";
import type { ModelSettings } from "../db/schema";
import { ApiError } from "../http/errors";
import { describeIssues } from "../http/validate";
import { registerModels, resolveUserPath } from "../models/catalog";
import { slugify } from "../models/registry";
import { MODEL_ID_RE, modelSettingsSchema, PROTECTED_PARAMS, type RegisterEntry } from "../models/schema";
import { peerConfigSchema, type PeerConfig } from "../peers/schema";
import type { Services } from "../services";
import {
  checkMacro,
  firstUnresolved,
  MacroError,
  mergeModelMacros,
  substituteEnv,
  substituteKeys,
  substituteMacros,
  usesPort,
  type Macro,
} from "./llama-swap-macros";
import { ShellWordsError, splitCommand, stripCommentLines } from "./shell-words";

/** The largest YAML file we read (llama-swap's documented example is ~25 KB). */
export const MAX_LLAMA_SWAP_YAML_BYTES = 1024 * 1024;

export class ImportError extends Error {}

export interface NotImported {
  /** Where in the llama-swap file: "models.docker-llama", "apiKeys", "models.x.env CUDA_VISIBLE_DEVICES". */
  item: string;
  reason: string;
}

export interface PlannedModel {
  /** The model's id in llama-swap. */
  from: string;
  entry: RegisterEntry & { id: string; path: string; settings: NonNullable<RegisterEntry["settings"]> };
  /** What was translated and how, for the plan print-out. */
  notes: string[];
}

export interface PlannedPeer {
  /** Where it came from in the llama-swap file: "peers.openrouter" or "models.remote-qwen". */
  item: string;
  peer: PeerConfig;
  notes: string[];
}

export interface LlamaSwapPlan {
  models: PlannedModel[];
  peers: PlannedPeer[];
  /** Global settings mapped from llama-swap's (healthCheckTimeout, globalTTL, unloadTimeout). */
  config: Partial<ConfigUpdate>;
  notImported: NotImported[];
  notes: string[];
}

export interface PlanOptions {
  /** Where `${env.NAME}` is looked up. */
  env: Record<string, string | undefined>;
  /** Relative model paths are resolved against this folder (llama-swap resolves them against its working directory). */
  baseDir: string;
}

type Dict = Record<string, unknown>;
const isDict = (v: unknown): v is Dict => typeof v === "object" && v !== null && !Array.isArray(v);

// ----------------------------------------------------------------- llama-server flags

/** Flags we turn into settings, by every spelling llama-server --help lists. */
const FLAG = {
  model: ["-m", "--model"],
  ctxSize: ["-c", "--ctx-size"],
  gpuLayers: ["-ngl", "--gpu-layers", "--n-gpu-layers"],
  threads: ["-t", "--threads"],
  batchSize: ["-b", "--batch-size"],
  alias: ["-a", "--alias"],
  mmproj: ["-mm", "--mmproj"],
  host: ["--host"],
  port: ["--port"],
  remoteModel: ["-hf", "-hfr", "--hf-repo", "-mu", "--model-url", "-dr", "--docker-repo"],
} as const;
const flagOf = new Map<string, keyof typeof FLAG>(
  Object.entries(FLAG).flatMap(([k, names]) => names.map((n) => [n, k as keyof typeof FLAG] as const)),
);

export interface MappedArgs {
  path?: string;
  /** -hf / --model-url: llama-server downloads the model itself. */
  remoteModel?: string;
  settings: Partial<ModelSettings>;
  mmprojPath?: string;
  aliases: string[];
  /** Everything else, verbatim, in order. */
  extraArgs: string[];
  /** Arguments left out on purpose, with the reason. */
  dropped: { arg: string; reason: string }[];
}

const isFlag = (s: string) => s.startsWith("-") && !/^-\d/.test(s);

/**
 * Maps llama-server's argv (without the binary) onto a model's path and settings. Pure; the
 * table test in tests/unit/llama-swap-import.test.ts pins each case.
 */
export function mapLlamaServerArgs(args: string[]): MappedArgs {
  const out: MappedArgs = { settings: {}, aliases: [], extraArgs: [], dropped: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const kind = isFlag(arg) ? flagOf.get(name) : undefined;
    if (!kind) {
      out.extraArgs.push(arg);
      continue;
    }
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (i + 1 < args.length) value = args[++i];
    const shown = value === undefined ? name : `${name} ${value}`;
    if (value === undefined) {
      out.dropped.push({ arg: name, reason: "the flag has no value" });
      continue;
    }
    const int = Number(value);
    const isInt = /^-?\d+$/.test(value);
    switch (kind) {
      case "model":
        out.path = value;
        break;
      case "remoteModel":
        out.remoteModel = shown;
        break;
      case "ctxSize":
      case "threads":
      case "batchSize":
        if (isInt) out.settings[kind] = int;
        else out.dropped.push({ arg: shown, reason: "not a whole number" });
        break;
      case "gpuLayers":
        if (isInt) out.settings.gpuLayers = int;
        else if (value === "all") out.settings.gpuLayers = -1;
        else out.dropped.push({ arg: shown, reason: "uses the configured gpu_layers instead (only a number or 'all' maps)" });
        break;
      case "alias":
        out.aliases.push(...value.split(",").map((a) => a.trim()).filter(Boolean));
        break;
      case "mmproj":
        out.mmprojPath = value;
        break;
      case "host":
      case "port":
        out.dropped.push({ arg: shown, reason: "the proxy chooses the address of every llama-server" });
        break;
    }
  }
  return out;
}

/**
 * CUDA_VISIBLE_DEVICES=0,2 -> `--device CUDA0,CUDA2`: llama-server offloads only to those
 * devices, which is the placement llama-swap meant. (The numbering differs only in that
 * llama-server keeps the other GPUs visible; it does not use them.) UUIDs do not map.
 */
export function cudaDevicesToArgs(value: string): string[] | null {
  const ids = value.split(",").map((s) => s.trim());
  if (ids.length === 0 || ids.some((s) => !/^\d{1,3}$/.test(s))) return null;
  return ["--device", ids.map((n) => `CUDA${n}`).join(",")];
}

/** Splits extraArgs into units (a flag and the values after it), so a refused flag drops with its value. */
function argUnits(args: string[]): string[][] {
  const units: string[][] = [];
  for (const a of args) {
    if (isFlag(a) || units.length === 0) units.push([a]);
    else units[units.length - 1]!.push(a);
  }
  return units;
}

const LOOPBACK_URL = /^https?:\/\/(localhost|127\.[\d.]+|\[::1\])(:\d+)?(\/|$)/i;

// ----------------------------------------------------------------- keys we know

/** Top-level keys with no equivalent here, and why. */
const TOP_LEVEL_NOT_IMPORTED: Record<string, string> = {
  logLevel: "set with --log-level (or LOG_LEVEL)",
  logTimeFormat: "log lines always carry ISO timestamps",
  logToStdout: "the proxy logs to stderr and keeps every child's output in the log view",
  logRequests: "every request is in the proxy's log and request statistics",
  metricsMaxInMemory: "request statistics and metric history are kept in SQLite",
  store: "everything is stored in the proxy's own SQLite database (--data-dir)",
  ui: "no equivalent setting",
  performance: "system metrics are sampled every metricsIntervalSeconds",
  startPort: "the proxy chooses a free port for each llama-server",
  sendLoadingState: "no equivalent: a request waits for its model while it loads",
  includeAliasesInList: "aliases are accepted in requests; /v1/models lists each model once",
  apiKeys: "keys are not imported: start the proxy with --api-key (or API_KEY)",
  upstream: "/upstream/<model>/ passes through to a model without ignore rules",
  profiles: "no equivalent of runtime model-id pins",
  selectors: "no equivalent of virtual model ids",
  matrix: "no equivalent of swap matrices: up to maxLoadedModels models run at once, least recently used swapped out",
};

/** Model keys with no equivalent here, and why. */
const MODEL_NOT_IMPORTED: Record<string, string> = {
  cmdStop: "the proxy stops llama-server itself (SIGTERM, then SIGKILL after stopTimeoutSeconds)",
  checkEndpoint: "the proxy waits for llama-server's /health",
  unloadTimeout: "only a global stop timeout exists here (stopTimeoutSeconds)",
  concurrencyLimit: "only a global limit exists here (maxConcurrentRequests)",
  metadata: "no per-model metadata in /v1/models",
  sendLoadingState: "no equivalent: a request waits for its model while it loads",
  timeouts: "the proxy's timeouts are global",
  compat: "no equivalent setting",
  capabilities: "capabilities are read from the model file",
  useModelName: "not needed: llama-server answers to any model name",
};
/** Model keys handled by the mapping. */
const MODEL_MAPPED = new Set(["cmd", "proxy", "aliases", "env", "ttl", "unlisted", "name", "description", "filters", "macros"]);

// ----------------------------------------------------------------- the plan

/**
 * The YAML parser, loaded on the first import rather than at start-up: evaluating it costs every
 * process ~3 ms of CPU and ~7 MB of RSS (bench/RESULTS.md, #16), and most never import anything.
 * A synchronous require keeps the plan synchronous; the bundler still embeds the package.
 */
let yaml: typeof Yaml | undefined;
const loadYaml = (): typeof Yaml => (yaml ??= require("yaml") as typeof Yaml);

function parseYaml(text: string): Dict {
  if (Buffer.byteLength(text) > MAX_LLAMA_SWAP_YAML_BYTES) throw new ImportError(`The file is larger than ${MAX_LLAMA_SWAP_YAML_BYTES / 1024} KiB`);
  const { isMap, isScalar, parseDocument } = loadYaml();
  // maxAliasCount bounds YAML alias expansion (a "billion laughs" file would otherwise blow up memory).
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) throw new ImportError(`Not valid YAML: ${doc.errors[0]!.message}`);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new ImportError(`Not valid YAML: ${(err as Error).message}`);
  }
  if (!isDict(raw)) throw new ImportError("Not a llama-swap configuration: the file must be a YAML mapping (models: ...)");
  // Macro order matters (a macro may use those declared before it); JS objects reorder
  // integer-like keys, so read the declaration order from the document itself.
  const orderOf = (node: unknown): string[] | undefined =>
    isMap(node) ? node.items.map((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key))) : undefined;
  Object.defineProperty(raw, "__macroOrder", { value: orderOf(doc.get("macros")), enumerable: false });
  const models = doc.get("models");
  if (isMap(models)) {
    const order: Record<string, string[] | undefined> = {};
    for (const p of models.items) {
      const id = isScalar(p.key) ? String(p.key.value) : String(p.key);
      order[id] = isMap(p.value) ? orderOf(p.value.get("macros")) : undefined;
    }
    Object.defineProperty(raw, "__modelMacroOrder", { value: order, enumerable: false });
  }
  return raw;
}

function readMacros(decl: unknown, order: string[] | undefined, where: string, env: PlanOptions["env"], missing: Set<string>): Macro[] {
  if (decl === undefined || decl === null) return [];
  if (!isDict(decl)) throw new MacroError(`${where} must be a mapping of name: value`);
  const names = order ?? Object.keys(decl);
  return names.map((name) => checkMacro(name, substituteEnv(decl[name], env, missing), where));
}

const num = (v: unknown): number | undefined => {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && /^-?\d+$/.test(v.trim())) return Number(v);
  return undefined;
};

const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));

/** The pure step: what an import of `text` would do. Throws ImportError when the file as a whole is unusable. */
export function planLlamaSwapImport(text: string, opts: PlanOptions): LlamaSwapPlan {
  const raw = parseYaml(text);
  const plan: LlamaSwapPlan = { models: [], peers: [], config: {}, notImported: [], notes: [] };
  const skip = (item: string, reason: string) => plan.notImported.push({ item, reason });

  const envMissing = new Set<string>();
  let globals: Macro[];
  try {
    globals = readMacros(raw.macros, (raw as { __macroOrder?: string[] }).__macroOrder, "macros", opts.env, envMissing);
  } catch (err) {
    if (err instanceof MacroError) throw new ImportError(err.message);
    throw err;
  }
  const g = (key: string): unknown => substituteMacros(substituteEnv(raw[key], opts.env, new Set()), globals);

  // ---- global settings
  const handledTop = new Set(["macros", "models", "hooks", "groups", "routing", "healthCheckTimeout", "globalTTL", "unloadTimeout", "peers", "captureBuffer"]);
  const health = num(g("healthCheckTimeout"));
  if (health !== undefined) {
    // llama-swap raises anything under 15 s to 15 s.
    plan.config.loadTimeoutSeconds = clamp(Math.max(15, health), 1, 3600);
    plan.notes.push(`healthCheckTimeout ${health} -> loadTimeoutSeconds ${plan.config.loadTimeoutSeconds}`);
  }
  const ttl = num(g("globalTTL"));
  if (ttl !== undefined && ttl >= 0) {
    plan.config.idleTimeoutSeconds = clamp(ttl, 0, 30 * 24 * 3600);
    plan.notes.push(`globalTTL ${ttl} -> idleTimeoutSeconds ${plan.config.idleTimeoutSeconds}`);
  }
  const unload = num(g("unloadTimeout"));
  if (unload !== undefined && unload > 0) {
    plan.config.stopTimeoutSeconds = clamp(unload, 0, 600);
    plan.notes.push(`unloadTimeout ${unload} -> stopTimeoutSeconds ${plan.config.stopTimeoutSeconds}`);
  }
  // Both are MB of memory for request/response bodies, 0 = off (llama-swap's default is 10; ours
  // stays off unless the file sets it).
  const capture = num(g("captureBuffer"));
  if (capture !== undefined && capture >= 0) {
    plan.config.captureMaxMB = clamp(capture, 0, 1024);
    plan.notes.push(`captureBuffer ${capture} -> captureMaxMB ${plan.config.captureMaxMB}`);
  }
  for (const key of Object.keys(raw)) {
    if (handledTop.has(key)) continue;
    skip(key, TOP_LEVEL_NOT_IMPORTED[key] ?? "unknown llama-swap setting");
  }
  // Only keys we map are validated against our schema, so a mapping bug shows here, not at apply.
  for (const [k, v] of Object.entries(plan.config)) {
    const schema = extraConfigShape[k as keyof typeof extraConfigShape];
    if (schema && !schema.safeParse(v).success) delete (plan.config as Record<string, unknown>)[k];
  }

  // ---- routing: groups and matrix
  const routing = isDict(raw.routing) ? raw.routing : {};
  const router = isDict(routing.router) ? routing.router : {};
  const routerSettings = isDict(router.settings) ? router.settings : {};
  const groups = raw.groups ?? (router.use === undefined || router.use === "group" ? routerSettings.groups : undefined);
  if (isDict(groups) && Object.keys(groups).length) {
    const together = Object.values(groups)
      .filter(isDict)
      .filter((gr) => gr.swap === false)
      .map((gr) => (Array.isArray(gr.members) ? gr.members.length : 0));
    const hint = together.length ? ` (the largest group that runs together has ${Math.max(...together)} members: set maxLoadedModels to that)` : "";
    skip("groups", `no per-group swap rules: up to maxLoadedModels models run at once, least recently used swapped out${hint}`);
  }
  if (router.use === "matrix" || routerSettings.matrix !== undefined) skip("routing.router.settings.matrix", TOP_LEVEL_NOT_IMPORTED.matrix!);
  if (isDict(routing.scheduler)) skip("routing.scheduler", "requests are served first come, first served; no per-model priority");
  for (const k of Object.keys(routing)) if (k !== "router" && k !== "scheduler") skip(`routing.${k}`, "unknown llama-swap setting");

  // ---- models
  if (!isDict(raw.models) || Object.keys(raw.models).length === 0) {
    throw new ImportError("Not a llama-swap configuration: it has no models section");
  }
  const startPort = num(g("startPort")) ?? 5800;
  const macroOrders = (raw as { __modelMacroOrder?: Record<string, string[] | undefined> }).__modelMacroOrder ?? {};
  // llama-swap hands out ${PORT} in sorted model-id order; we keep the same numbers.
  let nextPort = startPort;
  const ids = Object.keys(raw.models).sort();
  const usedIds = new Set<string>();
  const usedPeerNames = new Set<string>();
  const byLlamaSwapName = new Map<string, PlannedModel>();
  for (const from of ids) {
    const where = `models.${from}`;
    const rawModel = raw.models[from];
    if (!isDict(rawModel)) {
      skip(where, "not a mapping");
      continue;
    }
    let model: Dict;
    const missing = new Set<string>();
    try {
      const own = readMacros(rawModel.macros, macroOrders[from], `${where}.macros`, opts.env, missing);
      const macros = mergeModelMacros(from, globals, own);
      const { macros: _m, ...rest } = rawModel;
      const prepared: Dict = { ...rest };
      if (typeof prepared.cmd === "string") prepared.cmd = stripCommentLines(prepared.cmd);
      if (prepared.proxy === undefined || prepared.proxy === null) prepared.proxy = "http://localhost:${PORT}";
      model = substituteMacros(substituteEnv(prepared, opts.env, missing), macros) as Dict;
      if (isDict(model.filters) && isDict(model.filters.setParamsByID)) {
        model.filters = { ...model.filters, setParamsByID: substituteKeys(model.filters.setParamsByID, macros) };
      }
      if (usesPort(model.cmd)) {
        model = substituteMacros(model, [{ name: "PORT", value: nextPort++ }]) as Dict;
      } else if (usesPort(model.proxy) && rawModel.proxy !== undefined) {
        throw new MacroError("proxy uses ${PORT} but cmd does not");
      }
    } catch (err) {
      if (err instanceof MacroError) {
        skip(where, err.message);
        continue;
      }
      throw err;
    }

    // A model llama-swap only proxies to another host is a peer here (the remote server must be
    // running already: we do not run its cmd).
    // (Only a proxy the file sets: the default http://localhost:${PORT} is this host.)
    const remoteProxy = rawModel.proxy !== undefined && typeof model.proxy === "string" && !LOOPBACK_URL.test(model.proxy) ? model.proxy : undefined;
    const asPeer = (why: string) => {
      const served = typeof model.useModelName === "string" && model.useModelName.trim() ? model.useModelName.trim() : from;
      const notes = [why];
      if (served !== from) notes.push(`clients ask for it as '${served}' (useModelName): llama-swap's id '${from}' is not an alias of a peer's model here`);
      if (Array.isArray(model.aliases) && model.aliases.length) skip(`${where}.aliases`, "a peer's models are asked for by the ids the peer lists");
      for (const key of Object.keys(rawModel)) {
        if (["cmd", "proxy", "name", "description", "macros", "useModelName"].includes(key)) continue;
        if (key === "aliases") continue;
        skip(`${where}.${key}`, "the model is served by a peer: per-model settings do not apply to it");
      }
      planPeer(plan, usedPeerNames, where, from, { url: remoteProxy, models: [served] }, notes);
    };
    if (typeof model.cmd !== "string" || !model.cmd.trim()) {
      if (remoteProxy) asPeer(`no cmd: requests go to ${remoteProxy}`);
      else skip(where, "it has no cmd");
      continue;
    }
    let argv: string[];
    try {
      argv = splitCommand(model.cmd);
    } catch (err) {
      if (err instanceof ShellWordsError) {
        skip(where, `cmd cannot be split into arguments: ${err.message}`);
        continue;
      }
      throw err;
    }
    const unresolved = firstUnresolved(model.cmd);
    if (unresolved) {
      skip(where, unresolved.startsWith("env.") ? `environment variable ${unresolved.slice(4)} is not set` : `unknown macro \${${unresolved}} in cmd`);
      continue;
    }
    const binary = basename(argv[0] ?? "");
    if (!/^llama-server/i.test(binary) && remoteProxy) {
      asPeer(`its cmd (${binary}) is not run here: the server at ${remoteProxy} must already be running`);
      continue;
    }
    if (!/^llama-server/i.test(binary)) {
      const what = /^(docker|podman)$/i.test(binary)
        ? `runs a container (${binary})`
        : /^vllm$/i.test(binary) || argv.some((a) => /vllm/i.test(basename(a)))
          ? "runs vLLM"
          : `runs ${binary}, not llama-server`;
      skip(where, `${what}: only llama-server models can be imported`);
      continue;
    }
    const mapped = mapLlamaServerArgs(argv.slice(1));
    if (!mapped.path) {
      skip(where, mapped.remoteModel
        ? `the model is downloaded by llama-server (${mapped.remoteModel}): download the GGUF file and register its path`
        : "its cmd has no -m/--model");
      continue;
    }
    const notes: string[] = [`llama-swap ran ${argv[0]}; here every model runs the configured serverPath`];
    for (const d of mapped.dropped) notes.push(`left out ${d.arg}: ${d.reason}`);
    if (typeof model.proxy === "string" && !LOOPBACK_URL.test(model.proxy)) notes.push(`proxy ${model.proxy} ignored: the proxy talks to the llama-server it starts`);

    const settings: Partial<ModelSettings> = { ...mapped.settings };
    const extraArgs = [...mapped.extraArgs];

    // env
    if (Array.isArray(model.env)) {
      for (const e of model.env) {
        const [k, ...v] = String(e).split("=");
        const value = v.join("=");
        const devices = k === "CUDA_VISIBLE_DEVICES" ? cudaDevicesToArgs(value) : null;
        if (devices) {
          extraArgs.push(...devices);
          notes.push(`env CUDA_VISIBLE_DEVICES=${value} -> ${devices.join(" ")}`);
        } else {
          skip(`${where}.env ${k}`, k === "CUDA_VISIBLE_DEVICES"
            ? "only a list of device numbers maps (to --device CUDAn)"
            : "no per-model environment variables here: set it in the proxy's environment");
        }
      }
    }

    // extraArgs the settings schema refuses are left out one by one (with their values).
    const allowed: string[] = [];
    for (const unit of argUnits(extraArgs)) {
      const check = modelSettingsSchema.shape.extraArgs.safeParse(unit);
      if (check.success) allowed.push(...unit);
      else skip(`${where}.cmd ${unit.join(" ")}`, describeIssues(check.error));
    }
    if (allowed.length) settings.extraArgs = allowed;

    // aliases: llama-swap's, -a/--alias values, and the llama-swap id when our id differs.
    const id = uniqueId(slugify(from), usedIds);
    const aliases: string[] = [];
    const addAlias = (a: unknown, origin: string) => {
      const s = typeof a === "string" || typeof a === "number" ? String(a).trim() : "";
      if (!s || s === id) return;
      if (aliases.some((x) => x.toLowerCase() === s.toLowerCase())) return;
      const ok = modelSettingsSchema.shape.aliases.safeParse([s]);
      if (ok.success) aliases.push(s);
      else skip(`${where}.${origin} ${s}`, describeIssues(ok.error));
    };
    if (from !== id) addAlias(from, "id");
    if (Array.isArray(model.aliases)) for (const a of model.aliases) addAlias(a, "aliases");
    for (const a of mapped.aliases) addAlias(a, "cmd --alias");
    if (aliases.length) settings.aliases = aliases;

    const ttl = num(model.ttl);
    if (ttl !== undefined && ttl >= 0) settings.idleTimeoutSeconds = clamp(ttl, 0, 30 * 24 * 3600);

    // filters -> request rewriting
    if (isDict(model.filters)) {
      const f = model.filters;
      const stripText = typeof f.stripParams === "string" ? f.stripParams : typeof f.strip_params === "string" ? f.strip_params : "";
      const strip = [...new Set(stripText.split(",").map((s) => s.trim()).filter((s) => s && !PROTECTED_PARAMS.has(s)))].sort();
      const overrides = isDict(f.setParams) ? Object.fromEntries(Object.entries(f.setParams).filter(([k]) => !PROTECTED_PARAMS.has(k))) : {};
      const rewrite: NonNullable<ModelSettings["rewrite"]> = {};
      if (strip.length) rewrite.strip = strip;
      if (Object.keys(overrides).length) rewrite.overrides = overrides;
      if (Object.keys(rewrite).length) {
        const ok = modelSettingsSchema.shape.rewrite.safeParse(rewrite);
        if (ok.success) settings.rewrite = ok.data;
        else skip(`${where}.filters`, describeIssues(ok.error));
      }
      if (isDict(f.setParamsByID) && Object.keys(f.setParamsByID).length) {
        skip(`${where}.filters.setParamsByID`, "no per-alias parameters here: the parameters of the model's own id are not applied either");
      }
      for (const k of Object.keys(f)) if (!["stripParams", "strip_params", "setParams", "setParamsByID"].includes(k)) skip(`${where}.filters.${k}`, "unknown llama-swap setting");
    }
    if (model.unlisted === true) skip(`${where}.unlisted`, "every model is listed in /v1/models here");

    for (const key of Object.keys(rawModel)) {
      if (MODEL_MAPPED.has(key)) continue;
      skip(`${where}.${key}`, MODEL_NOT_IMPORTED[key] ?? "unknown llama-swap setting");
    }

    if (mapped.mmprojPath) {
      settings.extraArgs = [...(settings.extraArgs ?? []), "--mmproj", resolveUserPath(mapped.mmprojPath, opts.baseDir)];
      notes.push(`--mmproj ${mapped.mmprojPath}: kept as an extra argument`);
    }
    const check = z.partial(modelSettingsSchema).safeParse(settings);
    if (!check.success) {
      skip(where, `its settings are not valid here: ${describeIssues(check.error)}`);
      continue;
    }
    const entry: PlannedModel["entry"] = {
      id,
      path: resolveUserPath(mapped.path, opts.baseDir),
      name: typeof model.name === "string" && model.name.trim() ? model.name.trim().slice(0, 200) : from.slice(0, 200),
      ...(typeof model.description === "string" && model.description ? { description: model.description.slice(0, 2000) } : {}),
      settings: check.data,
    };
    const planned: PlannedModel = { from, entry, notes };
    plan.models.push(planned);
    byLlamaSwapName.set(from, planned);
    for (const a of aliases) byLlamaSwapName.set(a, planned);
  }

  // ---- hooks.on_startup.preload -> autoStart
  const hooks = g("hooks");
  if (hooks !== undefined) {
    const preload = isDict(hooks) && isDict(hooks.on_startup) ? hooks.on_startup.preload : undefined;
    if (Array.isArray(preload)) {
      for (const p of preload) {
        const target = byLlamaSwapName.get(String(p).trim());
        if (target) {
          target.entry.settings.autoStart = true;
          target.notes.push("hooks.on_startup.preload -> autoStart");
        } else skip(`hooks.on_startup.preload ${p}`, "no imported model has that name");
      }
    }
    if (isDict(hooks)) for (const k of Object.keys(hooks)) if (k !== "on_startup") skip(`hooks.${k}`, "unknown llama-swap setting");
  }

  // ---- peers
  const peers = raw.peers;
  if (peers !== undefined && peers !== null) {
    if (!isDict(peers)) skip("peers", "not a mapping of peer id: {proxy, models}");
    else {
      for (const from of Object.keys(peers).sort()) {
        const where = `peers.${from}`;
        const missing = new Set<string>();
        // llama-swap expands ${env.NAME} and the global macros in the whole file, peers included.
        const rawPeer = peers[from];
        const peer = isDict(rawPeer) ? (substituteMacros(substituteEnv(rawPeer, opts.env, missing), globals) as Dict) : undefined;
        if (!peer) {
          skip(where, "not a mapping");
          continue;
        }
        if (typeof peer.proxy !== "string" || !peer.proxy.trim()) {
          skip(where, "it has no proxy URL");
          continue;
        }
        if (firstUnresolved(peer.proxy)) {
          skip(where, `proxy uses ${describeUnresolved(firstUnresolved(peer.proxy)!)}`);
          continue;
        }
        const models = Array.isArray(peer.models) ? [...new Set(peer.models.filter((m) => typeof m === "string" || typeof m === "number").map((m) => String(m).trim()).filter(Boolean))] : [];
        if (models.length === 0) {
          skip(where, "it lists no models (llama-swap routes only the models listed)");
          continue;
        }
        const notes = [
          `routes ${models.length} model(s) to ${peer.proxy}; clients ask for them by their own ids: llama-swap's qualified '${from}/<model>' names are not recognised here`,
        ];
        const candidate: Partial<PeerConfig> = { url: peer.proxy, models };
        if (typeof peer.apiKey === "string" && peer.apiKey !== "") {
          const unresolved = firstUnresolved(peer.apiKey);
          if (unresolved) skip(`${where}.apiKey`, `${describeUnresolved(unresolved)}: the peer is added without a key (add apiKey to it in the config)`);
          else candidate.apiKey = peer.apiKey;
        }
        for (const key of Object.keys(peer)) {
          if (key === "proxy" || key === "models" || key === "apiKey") continue;
          skip(`${where}.${key}`, PEER_NOT_IMPORTED[key] ?? "unknown llama-swap setting");
        }
        planPeer(plan, usedPeerNames, where, from, candidate, notes);
      }
    }
  }
  return plan;
}

/** Peer keys with no equivalent here, and why. */
const PEER_NOT_IMPORTED: Record<string, string> = {
  filters: "no per-peer request rewriting here (a model's rewrite rules apply to local models)",
  timeouts: "peer timeouts are the proxy's own (the health check and request timeouts are global)",
};

const describeUnresolved = (name: string) => (name.startsWith("env.") ? `environment variable ${name.slice(4)}, which is not set` : `the unknown macro \${${name}}`);

/**
 * Escapes glob syntax, so a llama-swap model id (an exact name) matches only itself in our
 * peers' `models` globs (Bun.Glob takes a backslash escape).
 */
export function literalGlob(id: string): string {
  return id.replace(/[\\*?[\]{}!]/g, (c) => `\\${c}`);
}

/** Our peer name for a llama-swap id: the same when it fits NAME_RE (peers/schema.ts), unique. */
function peerName(from: string, used: Set<string>): string {
  const base = from.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 60) || "peer";
  let name = base;
  for (let n = 2; used.has(name.toLowerCase()); n++) name = `${base}-${n}`;
  used.add(name.toLowerCase());
  return name;
}

function planPeer(plan: LlamaSwapPlan, used: Set<string>, item: string, from: string, candidate: Partial<PeerConfig>, notes: string[]): void {
  const name = peerName(from, used);
  if (name !== from) notes.push(`named '${name}' (peer names are letters, digits, '.', '_' and '-')`);
  const check = peerConfigSchema.safeParse({ ...candidate, name, models: candidate.models?.map(literalGlob) });
  if (!check.success) {
    used.delete(name.toLowerCase());
    plan.notImported.push({ item, reason: `not a valid peer here: ${describeIssues(check.error)}` });
    return;
  }
  plan.peers.push({ item, peer: check.data, notes });
}

function uniqueId(base: string, used: Set<string>): string {
  let id = MODEL_ID_RE.test(base) ? base : "model";
  for (let n = 2; used.has(id); n++) id = `${base.slice(0, 115)}-${n}`;
  used.add(id);
  return id;
}

// ----------------------------------------------------------------- applying it

export interface ImportResult {
  registered: { id: string; from: string; path: string }[];
  /** Planned peers added to the config. */
  addedPeers: { name: string; from: string; url: string }[];
  /** Planned models that could not be registered (missing file, already registered, ...) and peers already configured. */
  failed: NotImported[];
  config: Partial<ConfigUpdate>;
  notImported: NotImported[];
  notes: string[];
}

/**
 * Registers the planned models, each on its own (a missing file fails that one only), then
 * applies the mapped global settings. A model whose path is already registered is reported, not
 * re-registered, so running the import twice is harmless.
 */
export async function applyLlamaSwapPlan(s: Pick<Services, "registry" | "supervisor" | "config">, plan: LlamaSwapPlan): Promise<ImportResult> {
  const result: ImportResult = { registered: [], addedPeers: [], failed: [], config: {}, notImported: plan.notImported, notes: plan.notes };
  for (const m of plan.models) {
    try {
      const done = await registerModels(s, [m.entry]);
      const row = done.models[0]!;
      result.registered.push({ id: row.id, from: m.from, path: m.entry.path });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      result.failed.push({ item: `models.${m.from}`, reason: `${err.message}: ${err.details?.replace(/^models\[0\]:? ?/, "") ?? ""}`.trim() });
    }
  }
  // A peer whose name or URL is configured already is reported, not added twice or overwritten.
  const existing = s.config.get().peers ?? [];
  const added: PeerConfig[] = [];
  for (const p of plan.peers) {
    const same = [...existing, ...added].find((e) => e.name.toLowerCase() === p.peer.name.toLowerCase() || e.url === p.peer.url);
    if (same) {
      result.failed.push({ item: p.item, reason: `a peer ${same.name === p.peer.name ? "with that name" : `with that URL (${same.name})`} is already configured` });
      continue;
    }
    added.push(p.peer);
    result.addedPeers.push({ name: p.peer.name, from: p.item, url: p.peer.url });
  }
  if (Object.keys(plan.config).length || added.length) {
    s.config.update({ ...s.config.get(), ...plan.config, ...(added.length ? { peers: [...existing, ...added] } : {}) });
    result.config = plan.config;
  }
  return result;
}

/** The plan (or the result) as text for the CLI: what is imported, what is not and why. */
export function formatPlan(plan: LlamaSwapPlan, result?: ImportResult): string {
  const lines: string[] = [];
  const failed = new Map((result?.failed ?? []).map((f) => [f.item, f.reason]));
  lines.push(result ? "Imported models:" : "Models to import:");
  if (!plan.models.length) lines.push("  (none)");
  for (const m of plan.models) {
    const why = failed.get(`models.${m.from}`);
    lines.push(`  ${why ? "FAILED " : ""}${m.from} -> ${m.entry.id}  ${m.entry.path}`);
    if (why) lines.push(`      ${why}`);
    const s = m.entry.settings;
    const shown = Object.entries(s).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    for (const x of shown) lines.push(`      ${x}`);
    for (const n of m.notes) lines.push(`      note: ${n}`);
  }
  if (plan.peers.length) lines.push(result ? "Peers added:" : "Peers to add:");
  for (const p of plan.peers) {
    const why = failed.get(p.item);
    lines.push(`  ${why ? "FAILED " : ""}${p.item} -> ${p.peer.name}  ${p.peer.url}`);
    if (why) lines.push(`      ${why}`);
    lines.push(`      models=${JSON.stringify(p.peer.models ?? [])}`);
    // The key itself is never printed.
    if (p.peer.apiKey) lines.push("      apiKey=(set)");
    for (const n of p.notes) lines.push(`      note: ${n}`);
  }
  const cfg = Object.entries(plan.config);
  if (cfg.length) {
    lines.push(result ? "Settings changed:" : "Settings to change:");
    for (const [k, v] of cfg) lines.push(`  ${k} = ${v}`);
  }
  if (plan.notImported.length) {
    lines.push("Not imported:");
    for (const n of plan.notImported) lines.push(`  ${n.item}: ${n.reason}`);
  }
  return lines.join("\n") + "\n";
}
