/**
 * Ollama's `options` (Modelfile parameters, api/types.go Options) -> llama-server's sampling
 * fields. llama-server reads these names on /v1/chat/completions as well as on /completion
 * (tools/server/README.md, "POST /completion" options), so one table serves both.
 *
 * Load-time options (num_ctx, num_gpu, num_thread, num_batch, main_gpu, use_mmap, numa, low_vram)
 * cannot change a running llama-server: they are per-model settings here (ctxSize, gpuLayers,
 * threads, batchSize), so a request's value is ignored, as is any key Ollama itself does not know
 * (Ollama logs and ignores those too).
 */

export class OptionsError extends Error {
  override name = "OptionsError";
}

type Kind = "number" | "integer" | "boolean" | "stop";

/** Ollama option -> [llama-server field, type]. */
const SAMPLING: Record<string, readonly [string, Kind]> = {
  temperature: ["temperature", "number"],
  top_p: ["top_p", "number"],
  top_k: ["top_k", "integer"],
  min_p: ["min_p", "number"],
  typical_p: ["typical_p", "number"],
  seed: ["seed", "integer"],
  num_predict: ["n_predict", "integer"],
  num_keep: ["n_keep", "integer"],
  repeat_penalty: ["repeat_penalty", "number"],
  repeat_last_n: ["repeat_last_n", "integer"],
  presence_penalty: ["presence_penalty", "number"],
  frequency_penalty: ["frequency_penalty", "number"],
  penalize_newline: ["penalize_nl", "boolean"],
  mirostat: ["mirostat", "integer"],
  mirostat_tau: ["mirostat_tau", "number"],
  mirostat_eta: ["mirostat_eta", "number"],
  tfs_z: ["tfs_z", "number"],
  stop: ["stop", "stop"],
};

/** Options that only apply when a model is loaded; see the module comment. */
export const LOAD_TIME_OPTIONS = new Set([
  "num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram", "use_mmap", "use_mlock", "numa", "num_thread", "vocab_only", "f16_kv", "logits_all",
  "embedding_only", "rope_frequency_base", "rope_frequency_scale", "num_gqa", "draft_num_predict",
]);

export const MAX_STOP_SEQUENCES = 16;

function check(name: string, value: unknown, kind: Kind): unknown {
  switch (kind) {
    case "number":
      if (typeof value === "number" && Number.isFinite(value)) return value;
      throw new OptionsError(`option "${name}" must be a number`);
    case "integer":
      if (typeof value === "number" && Number.isInteger(value)) return value;
      // Go's json decoder into an int field refuses 0.5; Ollama converts float64 -> int though.
      if (typeof value === "number" && Number.isFinite(value)) return Math.trunc(value);
      throw new OptionsError(`option "${name}" must be an integer`);
    case "boolean":
      if (typeof value === "boolean") return value;
      throw new OptionsError(`option "${name}" must be true or false`);
    case "stop": {
      const list = typeof value === "string" ? [value] : value;
      if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) throw new OptionsError(`option "stop" must be a list of strings`);
      if (list.length > MAX_STOP_SEQUENCES) throw new OptionsError(`option "stop" takes at most ${MAX_STOP_SEQUENCES} sequences`);
      return list;
    }
  }
}

/**
 * Maps `options` onto llama-server fields. `num_predict` is returned as `n_predict` (the native
 * name; /v1/chat/completions reads it too) and negative values (-1 infinite, -2 fill the context)
 * are left out so llama-server's own default applies. Throws OptionsError for a wrong type.
 */
export function mapOptions(options: Record<string, unknown> | undefined | null): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!options) return out;
  for (const [key, value] of Object.entries(options)) {
    if (value === null || value === undefined) continue;
    const entry = SAMPLING[key];
    if (!entry) continue; // load-time or unknown: ignored (module comment)
    const [field, kind] = entry;
    const v = check(key, value, kind);
    if (key === "num_predict" && (v as number) < 0) continue;
    if (key === "seed" && (v as number) < 0) continue; // Ollama: -1 = random, llama-server's default
    out[field] = v;
  }
  return out;
}
