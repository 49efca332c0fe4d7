/**
 * The memory-relevant settings a model will really run with: the global config, overridden by the
 * model's settings, overridden by its extraArgs (buildServerArgs appends them last, and
 * llama-server lets the last occurrence of a flag win). Flag names from llama-server --help
 * (shared/fixtures/llama-server/llama-server-help.txt).
 */
import type { LlamaServerConfig } from "../config/schema";
import type { ModelSettings } from "../db/schema";
import { DEFAULT_MEMORY_SETTINGS, type MemorySettings } from "./estimate";

const VALUE_FLAGS: Record<string, keyof MemorySettings> = {
  "-c": "ctxSize", "--ctx-size": "ctxSize",
  "-b": "batchSize", "--batch-size": "batchSize",
  "-ub": "ubatchSize", "--ubatch-size": "ubatchSize",
  "-np": "parallel", "--parallel": "parallel",
  "-ctk": "cacheTypeK", "--cache-type-k": "cacheTypeK",
  "-ctv": "cacheTypeV", "--cache-type-v": "cacheTypeV",
  "-ngl": "gpuLayers", "--gpu-layers": "gpuLayers", "--n-gpu-layers": "gpuLayers",
  "-fa": "flashAttn", "--flash-attn": "flashAttn",
};

const SWITCHES: Record<string, Partial<MemorySettings>> = {
  "-nkvo": { kvOffload: false }, "--no-kv-offload": { kvOffload: false },
  "-kvo": { kvOffload: true }, "--kv-offload": { kvOffload: true },
  "--swa-full": { swaFull: true },
  "-kvu": { kvUnified: true }, "--kv-unified": { kvUnified: true },
  "-no-kvu": { kvUnified: false }, "--no-kv-unified": { kvUnified: false },
  "--no-mmproj": { mmproj: false },
};

/** Applies extraArgs (an argv array) to `s`; unknown flags are ignored (they do not change memory). */
export function applyExtraArgs(s: MemorySettings, extraArgs: readonly string[]): MemorySettings {
  const out = { ...s };
  let explicitSlots = false;
  let explicitUnified = false;
  for (let i = 0; i < extraArgs.length; i++) {
    const arg = extraArgs[i]!;
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const sw = SWITCHES[flag];
    if (sw) {
      Object.assign(out, sw);
      if ("kvUnified" in sw) explicitUnified = true;
      continue;
    }
    const key = VALUE_FLAGS[flag];
    if (!key) continue;
    const value = eq > 0 ? arg.slice(eq + 1) : extraArgs[++i];
    if (value === undefined) break;
    if (key === "cacheTypeK" || key === "cacheTypeV") out[key] = value.toLowerCase();
    else if (key === "flashAttn") out.flashAttn = value === "on" || value === "off" ? value : "auto";
    else if (key === "gpuLayers") out.gpuLayers = value === "all" || value === "auto" ? -1 : Number(value) || 0;
    else if (key === "parallel") {
      const n = Number(value);
      // -np -1 is llama-server's auto: 4 slots, unified cache (tools/server/server.cpp).
      if (n === -1) {
        out.parallel = 4;
        explicitSlots = false;
      } else if (Number.isInteger(n) && n > 0) {
        out.parallel = n;
        explicitSlots = true;
      }
    } else {
      const n = Number(value);
      if (Number.isFinite(n) && n >= 0) out[key] = n as never;
    }
  }
  // An explicit -np leaves llama-server's own default, a KV cache per slot (kv_unified false),
  // unless -kvu says otherwise; only "auto" slots share one cache.
  if (!explicitUnified) out.kvUnified = !explicitSlots;
  return out;
}

/** Effective memory settings of a model (model settings may be absent: config defaults apply). */
export function memorySettingsOf(config: Pick<LlamaServerConfig, "ctx_size" | "batch_size" | "gpu_layers">, settings: ModelSettings, hasMmproj: boolean): MemorySettings {
  const base: MemorySettings = {
    ...DEFAULT_MEMORY_SETTINGS,
    ctxSize: settings.ctxSize ?? config.ctx_size,
    batchSize: settings.batchSize ?? config.batch_size,
    gpuLayers: settings.gpuLayers ?? config.gpu_layers,
    mmproj: hasMmproj,
  };
  return applyExtraArgs(base, settings.extraArgs ?? []);
}

/** A short stable key of the settings, for keeping a measurement per model and settings. */
export function settingsKey(s: MemorySettings): string {
  return [s.ctxSize, s.batchSize, s.ubatchSize, s.parallel, s.kvUnified ? "u" : "s", s.cacheTypeK, s.cacheTypeV, s.gpuLayers, s.flashAttn, s.kvOffload ? "o" : "h", s.swaFull ? "sf" : "", s.mmproj ? "mm" : ""].join(":");
}
