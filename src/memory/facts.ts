/**
 * The facts about a model file that decide how much memory llama-server needs for it, read from
 * its GGUF header(s) once and kept small: per-layer weight bytes, attention shape per layer,
 * sliding-window and recurrent layers. estimate.ts turns them into bytes for given settings.
 *
 * Hyperparameter keys and their defaults follow llama.cpp's src/llama-model.cpp and
 * src/models/<arch>.cpp (load_hparams); the sliding-window periods are those files' defaults.
 */
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { GgufError, readGgufHeaderSync, type GgufHeader, type GgufValue } from "../models/gguf";
import { parseSplitName, shardFileName } from "../models/names";

export interface WeightBytes {
  /** Bytes of blk.N.* tensors, index = layer. */
  layers: number[];
  /** token_embd.*: llama.cpp keeps the input embedding on the host whatever -ngl says. */
  tokenEmbedding: number;
  /** output.* and output_norm.*: offloaded with the last layer (-ngl > n_layer). */
  output: number;
  /** Anything else (rope factors, position embeddings...). Counted on the host. */
  other: number;
  /** The multimodal projector (--mmproj), 0 when none. */
  mmproj: number;
  total: number;
}

export interface ModelMemoryFacts {
  architecture: string;
  layers: number;
  embedding: number;
  vocab: number;
  trainedContext: number;
  feedForward: number;
  /** Attention heads and KV heads per layer; kvHeads 0 = no attention in that layer. */
  heads: number[];
  kvHeads: number[];
  keyLength: number;
  valueLength: number;
  /** Sliding-window size (tokens) and which layers use it; absent when the model has none. */
  slidingWindow?: number;
  swaLayers: boolean[];
  /** Layers whose memory is a fixed recurrent state per sequence, not a KV cache. */
  recurrentLayers: boolean[];
  /** Recurrent state size per layer per sequence, elements (f32): conv/shift (r) + state (s). */
  recurrentStateElements: number;
  weights: WeightBytes;
  /** Files read (all split parts, plus the projector). */
  files: number;
}

type Meta = Record<string, GgufValue>;

const num = (v: GgufValue | undefined): number | undefined =>
  typeof v === "number" && Number.isFinite(v) ? v : typeof v === "bigint" ? Number(v) : undefined;

/** A per-layer key that may be a scalar or (since hybrid models) an array of per-layer values. */
function perLayer(m: Meta, key: string, layers: number, fallback: number): number[] {
  const v = m[key];
  if (v && typeof v === "object" && "array" in v && v.values && v.values.length > 0) {
    return Array.from({ length: layers }, (_, i) => v.values![i] ?? v.values![v.values!.length - 1]!);
  }
  const n = num(v);
  return new Array(layers).fill(n ?? fallback);
}

/** Sliding-window period per architecture when the file does not say (llama.cpp's defaults). */
const SWA_PERIOD: Record<string, number> = {
  gemma2: 2, gemma3: 6, gemma3n: 5, cohere2: 4, "gpt-oss": 2, llama4: 4, exaone4: 4, phi3: 1, "gemma-embedding": 6,
};

/** Architectures whose every layer is recurrent (no KV cache at all). */
const RECURRENT_ARCHS = new Set(["mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"]);

/** The swa flags for `layers` layers with llama.cpp's set_swa_pattern(period) (last of each period dense). */
export function swaPattern(layers: number, period: number): boolean[] {
  return Array.from({ length: layers }, (_, il) => period === 0 || il % period < period - 1);
}

/** Facts from already-read headers (first = the model's first split part). Pure: tests feed headers. */
export function factsFromHeaders(parts: GgufHeader[], mmproj?: GgufHeader): ModelMemoryFacts {
  const first = parts[0];
  if (!first) throw new GgufError("no GGUF header");
  const m = first.metadata;
  const arch = typeof m["general.architecture"] === "string" ? (m["general.architecture"] as string) : "unknown";
  const k = (name: string) => m[`${arch}.${name}`];
  const layers = num(k("block_count")) ?? 0;
  const embedding = num(k("embedding_length")) ?? 0;
  const heads = perLayer(m, `${arch}.attention.head_count`, layers, 0);
  const headsDefault = heads.find((h) => h > 0) ?? 1;
  const kvHeads = perLayer(m, `${arch}.attention.head_count_kv`, layers, Number.NaN).map((v, i) => (Number.isNaN(v) ? heads[i]! : v));
  const headDim = headsDefault > 0 ? Math.floor(embedding / headsDefault) : 0;
  const keyLength = num(k("attention.key_length")) ?? headDim;
  const valueLength = num(k("attention.value_length")) ?? headDim;
  const ffArr = perLayer(m, `${arch}.feed_forward_length`, layers, 0);
  const feedForward = Math.max(0, ...ffArr);

  // Sliding window: a window size plus a period (scalar key) or per-layer flags (array key).
  const window = num(k("attention.sliding_window"));
  let swaLayers = new Array<boolean>(layers).fill(false);
  let slidingWindow: number | undefined;
  if (window && window > 0) {
    const pat = k("attention.sliding_window_pattern");
    if (pat && typeof pat === "object" && "array" in pat && pat.values) {
      swaLayers = Array.from({ length: layers }, (_, i) => (pat.values![i] ?? 0) !== 0);
    } else {
      const period = num(pat) ?? SWA_PERIOD[arch];
      if (period !== undefined) swaLayers = swaPattern(layers, period);
    }
    if (swaLayers.some(Boolean)) slidingWindow = window;
  }

  // Recurrent layers: every layer of a pure recurrent model; in hybrids the layers without KV
  // heads (jamba, granitehybrid, nemotron-h write head_count_kv as a per-layer array with 0s)
  // or all but every full_attention_interval-th layer (qwen3next).
  const interval = num(k("full_attention_interval"));
  const recurrentLayers = Array.from({ length: layers }, (_, i) =>
    RECURRENT_ARCHS.has(arch) ? true : interval ? (i + 1) % interval !== 0 : kvHeads[i] === 0 && num(k("ssm.state_size")) !== undefined,
  );
  const dConv = num(k("ssm.conv_kernel")) ?? 0;
  const dInner = num(k("ssm.inner_size")) ?? 0;
  const dState = num(k("ssm.state_size")) ?? 0;
  const nGroup = num(k("ssm.group_count")) ?? 0;
  const wkvHead = num(k("wkv.head_size")) ?? 0;
  const tokenShift = num(k("token_shift_count")) ?? 2;
  const recurrentStateElements = wkvHead
    ? tokenShift * embedding + embedding * wkvHead
    : (dConv > 0 ? dConv - 1 : 0) * (dInner + 2 * nGroup * dState) + dState * dInner;

  const weights: WeightBytes = { layers: new Array(layers).fill(0), tokenEmbedding: 0, output: 0, other: 0, mmproj: 0, total: 0 };
  let vocab = 0;
  for (const part of parts) {
    for (const t of part.tensors ?? []) {
      const blk = /^blk\.(\d+)\./.exec(t.name);
      if (blk) {
        const i = Number(blk[1]);
        if (i < layers) weights.layers[i]! += t.bytes;
        else weights.other += t.bytes; // nextn/MTP layers beyond block_count
      } else if (t.name.startsWith("token_embd.")) {
        weights.tokenEmbedding += t.bytes;
        if (t.name === "token_embd.weight") vocab = t.dims[1] ?? 0;
      } else if (t.name.startsWith("output")) {
        weights.output += t.bytes;
      } else {
        weights.other += t.bytes;
      }
    }
  }
  for (const t of mmproj?.tensors ?? []) weights.mmproj += t.bytes;
  weights.total = weights.layers.reduce((a, b) => a + b, 0) + weights.tokenEmbedding + weights.output + weights.other + weights.mmproj;
  const tokens = m["tokenizer.ggml.tokens"];
  if (!vocab) vocab = num(k("vocab_size")) ?? (tokens && typeof tokens === "object" && "array" in tokens ? tokens.length : 0);

  return {
    architecture: arch,
    layers,
    embedding,
    vocab,
    trainedContext: num(k("context_length")) ?? 0,
    feedForward,
    heads,
    kvHeads,
    keyLength,
    valueLength,
    ...(slidingWindow ? { slidingWindow } : {}),
    swaLayers,
    recurrentLayers,
    recurrentStateElements,
    weights,
    files: parts.length + (mmproj ? 1 : 0),
  };
}

/** The paths of every split part of a model given its first part (itself when not split). */
export function splitParts(path: string): string[] {
  const split = parseSplitName(basename(path));
  if (!split || split.count <= 1) return [path];
  const dir = dirname(path);
  return Array.from({ length: split.count }, (_, i) => join(dir, shardFileName(split.stem, i + 1, split.count)));
}

/** Reads the facts of a model file (all split parts, and the projector when given). Throws GgufError/fs errors. */
export function readMemoryFacts(path: string, mmprojPath?: string | null): ModelMemoryFacts {
  const opts = { tensors: true, smallArrays: true } as const;
  const parts = splitParts(path).map((p) => {
    if (!existsSync(p)) throw new GgufError(`split part not found: ${p}`);
    return readGgufHeaderSync(p, opts);
  });
  const mm = mmprojPath && existsSync(mmprojPath) ? readGgufHeaderSync(mmprojPath, opts) : undefined;
  return factsFromHeaders(parts, mm);
}
