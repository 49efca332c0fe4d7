/**
 * How much memory llama-server will use for a model with given settings: a pure function of the
 * header facts (facts.ts) and the effective settings, so it is tested as a table and compared
 * with llama-server's own report (tests/e2e/memory-real.test.ts states the error per shape).
 *
 * The parts mirror what llama.cpp allocates (src/llama-model.cpp load_tensors,
 * src/llama-kv-cache*.cpp, src/llama-context.cpp sched_reserve):
 *   weights  the tensors' bytes (every split part; the projector when --mmproj is passed)
 *   kv       per attention layer: cells x kv_heads x (key_len x bytes(-ctk) + value_len x bytes(-ctv));
 *            cells = n_ctx padded to 256, sliding-window layers only window x slots + ubatch;
 *            recurrent layers a fixed f32 state per slot
 *   compute  the graph's scratch buffer: dominated by the logits (n_vocab x ubatch f32) and the
 *            widest activation, see computeBytes()
 *   output   logits kept per slot between calls (n_vocab x slots f32), host
 */
import type { ModelMemoryFacts } from "./facts";

export const MiB = 1024 * 1024;

/** The settings that change memory, after global config, model settings and extraArgs are merged. */
export interface MemorySettings {
  /** Requested context (-c); 0 = the model's trained context. */
  ctxSize: number;
  batchSize: number;
  ubatchSize: number;
  /** Server slots (-np); llama-server's "auto" is 4 with a unified KV cache. */
  parallel: number;
  kvUnified: boolean;
  cacheTypeK: string;
  cacheTypeV: string;
  /** -ngl: -1 = all. */
  gpuLayers: number;
  flashAttn: "on" | "off" | "auto";
  /** -nkvo puts the KV cache on the host even for offloaded layers. */
  kvOffload: boolean;
  swaFull: boolean;
  /** Whether --mmproj is passed (its weights count). */
  mmproj: boolean;
}

export const DEFAULT_MEMORY_SETTINGS: MemorySettings = {
  ctxSize: 0, batchSize: 2048, ubatchSize: 512, parallel: 4, kvUnified: true, cacheTypeK: "f16", cacheTypeV: "f16",
  gpuLayers: -1, flashAttn: "auto", kvOffload: true, swaFull: false, mmproj: false,
};

/** Bytes per element of the KV cache types llama-server accepts for -ctk/-ctv (block size folded in). */
export const CACHE_TYPE_BYTES: Readonly<Record<string, number>> = {
  f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32, q4_1: 20 / 32, iq4_nl: 18 / 32, q5_0: 22 / 32, q5_1: 24 / 32,
};

export interface MemoryEstimate {
  /** The n_ctx llama-server will allocate (requested or trained, padded to 256). */
  contextSize: number;
  weightsBytes: number;
  kvBytes: number;
  computeBytes: number;
  outputBytes: number;
  totalBytes: number;
  /** Of the total: what goes to GPU memory (0 without a GPU) and what stays in host RAM. */
  gpuBytes: number;
  hostBytes: number;
  /** Layers on the GPU (0..layers). */
  offloadedLayers: number;
  /** Weights + KV of each offloaded layer, for splitting a model over several GPUs. */
  gpuLayerBytes: number[];
}

const pad = (n: number, to: number) => Math.ceil(n / to) * to;

/** n_ctx as llama.cpp computes it (llama-context.cpp): padded to 256; per slot when not unified. */
export function effectiveContext(facts: Pick<ModelMemoryFacts, "trainedContext">, s: Pick<MemorySettings, "ctxSize" | "parallel" | "kvUnified">): number {
  const requested = s.ctxSize > 0 ? s.ctxSize : facts.trainedContext || 4096;
  let n = pad(requested, 256);
  if (!s.kvUnified && s.parallel > 1) n = pad(Math.floor(n / s.parallel), 256) * s.parallel;
  return n;
}

/** KV (or recurrent state) bytes of each layer. */
export function kvBytesPerLayer(facts: ModelMemoryFacts, s: MemorySettings, nCtx: number): number[] {
  const tk = CACHE_TYPE_BYTES[s.cacheTypeK] ?? 2;
  const tv = CACHE_TYPE_BYTES[s.cacheTypeV] ?? 2;
  const slots = Math.max(1, s.parallel);
  const ubatch = Math.min(s.ubatchSize, s.batchSize);
  const swaCells = facts.slidingWindow && !s.swaFull
    ? pad(Math.min(nCtx, facts.slidingWindow * (s.kvUnified ? slots : 1) + ubatch), 256)
    : nCtx;
  return Array.from({ length: facts.layers }, (_, il) => {
    if (facts.recurrentLayers[il]) return slots * facts.recurrentStateElements * 4;
    const kvHeads = facts.kvHeads[il] ?? 0;
    if (kvHeads === 0) return 0;
    const cells = facts.swaLayers[il] ? swaCells : nCtx;
    return cells * kvHeads * (facts.keyLength * tk + facts.valueLength * tv);
  });
}

/**
 * The compute (scratch) buffer llama.cpp reserves for the worst-case graph (one ubatch of tokens
 * against the whole context). Fitted to the real llama-server's "compute buffer size" lines
 * (CPU build, 5 shapes x 3 contexts, tests/e2e/memory-real.test.ts):
 *   activations  ubatch x f32 x (2 x n_ff + 5 x n_embd)   (FFN gate/up pair, residual, norms, Q/K/V)
 *   KQ mask      n_ctx x ubatch, f16 with flash attention (llama-server's "auto" turns it on), f32 without
 *   KQ scores    without flash attention only: n_ctx x ubatch x n_head x f32
 * e.g. n_embd 1024, n_ff 2048, ubatch 512, n_ctx 4096: 18 + 4 = 22 MiB (llama-server: 22.01 MiB).
 */
export function computeBytes(facts: ModelMemoryFacts, s: MemorySettings, nCtx: number): number {
  const ubatch = Math.min(s.ubatchSize, s.batchSize, nCtx);
  const heads = Math.max(1, ...facts.heads);
  const activations = ubatch * 4 * (2 * facts.feedForward + 5 * facts.embedding);
  const flash = s.flashAttn !== "off";
  const mask = nCtx * ubatch * (flash ? 2 : 4);
  const scores = flash ? 0 : nCtx * ubatch * heads * 4;
  return activations + mask + scores;
}

/** The estimate. `gpus` = whether any GPU will take offloaded layers (none: all on the host). */
export function estimateMemory(facts: ModelMemoryFacts, s: MemorySettings, gpus: boolean): MemoryEstimate {
  const nCtx = effectiveContext(facts, s);
  const kvLayers = kvBytesPerLayer(facts, s, nCtx);
  const kvBytes = kvLayers.reduce((a, b) => a + b, 0);
  const w = facts.weights;
  const weightsBytes = w.layers.reduce((a, b) => a + b, 0) + w.tokenEmbedding + w.output + w.other + (s.mmproj ? w.mmproj : 0);
  const compute = computeBytes(facts, s, nCtx);
  const outputBytes = facts.vocab * Math.max(1, s.parallel) * 4;
  const totalBytes = weightsBytes + kvBytes + compute + outputBytes;

  // -ngl counts from the last layer; -ngl > n_layer also offloads the output layer.
  const ngl = s.gpuLayers < 0 ? facts.layers + 1 : s.gpuLayers;
  const offloadedLayers = gpus ? Math.min(ngl, facts.layers) : 0;
  const gpuLayerBytes: number[] = [];
  for (let il = facts.layers - offloadedLayers; il < facts.layers; il++) {
    gpuLayerBytes.push((w.layers[il] ?? 0) + (s.kvOffload ? kvLayers[il]! : 0));
  }
  let gpuBytes = gpuLayerBytes.reduce((a, b) => a + b, 0);
  if (gpus && ngl > facts.layers) gpuBytes += w.output;
  // With anything offloaded, the GPU holds the graph's scratch (and the projector, mmproj-offload's default).
  if (gpus && offloadedLayers > 0) gpuBytes += compute + (s.mmproj ? w.mmproj : 0);
  return {
    contextSize: nCtx,
    weightsBytes,
    kvBytes,
    computeBytes: compute,
    outputBytes,
    totalBytes,
    gpuBytes,
    hostBytes: totalBytes - gpuBytes,
    offloadedLayers,
    gpuLayerBytes,
  };
}

/**
 * The largest context (multiple of 256) whose estimate needs at most `budgetBytes` in total (or
 * on the GPU when `gpus`), or 0 when not even 256 fits. Binary search: the estimate grows with
 * the context.
 */
export function maxContextWithin(facts: ModelMemoryFacts, s: MemorySettings, gpus: boolean, budgetBytes: number, limit = facts.trainedContext || 131072): number {
  const need = (ctx: number) => {
    const e = estimateMemory(facts, { ...s, ctxSize: ctx }, gpus);
    return gpus ? e.gpuBytes : e.totalBytes;
  };
  if (need(256) > budgetBytes) return 0;
  let lo = 1; // in units of 256 tokens; lo always fits
  let hi = Math.max(1, Math.floor(limit / 256));
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (need(mid * 256) <= budgetBytes) lo = mid;
    else hi = mid - 1;
  }
  return lo * 256;
}
