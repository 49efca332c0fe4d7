/** What a model file's name tells us when its header cannot (or before we read it). */

/** `name-00001-of-00003.gguf` (llama.cpp gguf-split naming). */
const SPLIT_RE = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;

export interface SplitName {
  /** File name without the shard suffix and extension. */
  stem: string;
  /** 1-based shard number. */
  part: number;
  count: number;
}

export function parseSplitName(fileName: string): SplitName | undefined {
  const m = SPLIT_RE.exec(fileName);
  if (!m) return undefined;
  const part = Number(m[2]);
  const count = Number(m[3]);
  if (part < 1 || count < 1 || part > count) return undefined;
  return { stem: m[1]!, part, count };
}

/** The file name of shard `part` of a split model (same width as llama.cpp writes: 5 digits). */
export function shardFileName(stem: string, part: number, count: number): string {
  return `${stem}-${String(part).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.gguf`;
}

/** Multimodal projectors are not models of their own (llama-server takes them with --mmproj). */
export function isMmprojName(fileName: string): boolean {
  return /^mmproj/i.test(fileName) || /[-_.]mmproj[-_.]/i.test(fileName);
}

/** A display name from a file name: extension and shard suffix removed. */
export function stemOf(fileName: string): string {
  const split = parseSplitName(fileName);
  if (split) return split.stem;
  return fileName.replace(/\.(gguf|bin|ggml)$/i, "");
}

/** Longest first, so "mixtral" wins over "mistral"-like prefixes and "qwen2" over "qwen". */
const FAMILIES: [RegExp, string][] = [
  [/codellama|code-llama/i, "llama"],
  [/tinyllama/i, "llama"],
  [/llama/i, "llama"],
  [/mixtral/i, "mixtral"],
  [/mistral|ministral|devstral|magistral/i, "mistral"],
  [/qwen3/i, "qwen3"],
  [/qwen2/i, "qwen2"],
  [/qwen/i, "qwen"],
  [/gemma3|gemma-3/i, "gemma3"],
  [/gemma2|gemma-2/i, "gemma2"],
  [/gemma/i, "gemma"],
  [/phi-?3/i, "phi3"],
  [/phi-?2/i, "phi2"],
  [/phi/i, "phi"],
  [/deepseek/i, "deepseek"],
  [/falcon/i, "falcon"],
  [/starcoder/i, "starcoder"],
  [/gpt-?neox|pythia/i, "gptneox"],
  [/gpt-?j/i, "gptj"],
  [/gpt-?2/i, "gpt2"],
  [/gpt-oss/i, "gpt-oss"],
  [/mpt/i, "mpt"],
  [/bloom/i, "bloom"],
  [/command-?r|cohere/i, "command-r"],
  [/granite/i, "granite"],
  [/olmo/i, "olmo"],
  [/rwkv/i, "rwkv"],
  [/mamba/i, "mamba"],
  [/stablelm/i, "stablelm"],
  [/baichuan/i, "baichuan"],
  [/internlm/i, "internlm"],
  [/yi-/i, "yi"],
  [/whisper/i, "whisper"],
];

export function familyFromName(fileName: string): string | undefined {
  for (const [re, family] of FAMILIES) if (re.test(fileName)) return family;
  return undefined;
}

/** Quantization labels as they appear in file names (Q4_K_M, IQ3_XXS, F16, BF16, ...). */
const QUANT_RE = /(?:^|[-_.])((?:I?Q\d(?:_[0-9A-Z]+)*)|BF16|F16|F32|FP16|FP32|MXFP4|TQ[12]_0)(?=$|[-_.])/i;

export function quantizationFromName(fileName: string): string | undefined {
  const m = QUANT_RE.exec(stemOf(fileName));
  if (!m) return undefined;
  const q = m[1]!.toUpperCase();
  return q === "FP16" ? "F16" : q === "FP32" ? "F32" : q;
}
