import { sha256Hex } from "../crypto";

/**
 * What a saved KV cache is valid for. llama-server checks only that a file's shapes fit the
 * running context (`state_seq_read_data`) and that its tokens are below n_vocab: a cache of a
 * different model file with the same dimensions, or of another KV type, would be "restored" and
 * answer garbage. So a file is offered only to the exact settings it was saved under.
 */
export interface CacheSettings {
  /** The model file, and its size and mtime (a re-downloaded or re-quantized file is another model). */
  modelPath: string;
  modelSize: number;
  modelMtimeMs: number;
  mmprojPath: string | null;
  /** -c as launched (0 = the model's own). */
  ctxSize: number;
  /**
   * The model's extra arguments verbatim: -ctk/-ctv, -np, --swa-full, rope scaling, LoRA ... any
   * of them can change what the cache holds. Conservative: changing any extra argument starts afresh.
   */
  extraArgs: string[];
  /** The llama-server binary: another build may lay out its state differently. */
  serverPath: string;
  serverSize: number;
  serverMtimeMs: number;
}

/** A short stable hash of the settings (order of keys fixed here, not by the caller). */
export function settingsFingerprint(s: CacheSettings): string {
  const canonical = JSON.stringify([
    s.modelPath, s.modelSize, Math.round(s.modelMtimeMs), s.mmprojPath ?? null, s.ctxSize,
    s.extraArgs, s.serverPath, s.serverSize, Math.round(s.serverMtimeMs),
  ]);
  return sha256Hex(canonical).slice(0, 16);
}

/** Hash of a token sequence (stored in the index so two files of one prefix are recognisable). */
export function tokensHash(tokens: ArrayLike<number>): string {
  const arr = tokens instanceof Int32Array ? tokens : Int32Array.from(tokens as ArrayLike<number>);
  return sha256Hex(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength)).slice(0, 16);
}
