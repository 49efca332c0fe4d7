/**
 * A GGUF header reader that reads only what it needs: the key/value metadata at the start of the
 * file, never the tensor data (models are many GB). Arrays (e.g. the 150k-entry tokenizer
 * vocabulary) are skipped without being materialised; numeric arrays are jumped over, string
 * arrays are walked by their length prefixes.
 *
 * Why not @huggingface/gguf: measured on local files it reads a fixed 2 MB chunk per file and
 * decodes every array (the whole vocabulary) and every tensor info, which makes a 1,000-file scan
 * cost seconds and hundreds of MB of garbage. We need six keys.
 *
 * Spec: ggml docs/gguf.md. Layout: magic "GGUF", u32 version, tensor_count, kv_count (u64 since
 * v2, u32 in v1), then kv_count entries of {string key, u32 type, value}. Strings are a length
 * (u64, u32 in v1) followed by UTF-8 bytes.
 */

import { closeSync, fstatSync, openSync, readSync } from "node:fs";

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32

export enum GgufType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

const FIXED_SIZE: Partial<Record<GgufType, number>> = {
  [GgufType.UINT8]: 1,
  [GgufType.INT8]: 1,
  [GgufType.UINT16]: 2,
  [GgufType.INT16]: 2,
  [GgufType.UINT32]: 4,
  [GgufType.INT32]: 4,
  [GgufType.FLOAT32]: 4,
  [GgufType.BOOL]: 1,
  [GgufType.UINT64]: 8,
  [GgufType.INT64]: 8,
  [GgufType.FLOAT64]: 8,
};

/** A skipped array shows up in the metadata as this marker (its element type and length). */
export interface GgufArrayInfo {
  array: true;
  type: GgufType;
  length: number;
  /** The elements of a short numeric/bool array, when ReadOptions.smallArrays asked for them. */
  values?: number[];
}

/** One tensor's description in the header (the data itself is never read). */
export interface GgufTensorInfo {
  name: string;
  /** ggml's ne[]: dims[0] is the fastest-varying (row length). */
  dims: number[];
  /** ggml_type (see GGML_TYPE_SIZE). */
  type: number;
  /** Bytes of the tensor's data, from its type's block size (see ggmlTensorBytes). */
  bytes: number;
}

export type GgufValue = string | number | bigint | boolean | GgufArrayInfo;

export interface GgufHeader {
  version: number;
  littleEndian: boolean;
  tensorCount: number;
  metadata: Record<string, GgufValue>;
  /** Bytes of the file actually read to get here (the point of this module). */
  bytesRead: number;
  /** False when reading stopped early (see ReadOptions.stopBeforeLargeArrays). */
  complete: boolean;
  /** Tensor infos, only when ReadOptions.tensors was set. */
  tensors?: GgufTensorInfo[];
}

export interface ReadOptions {
  /**
   * Stop before walking a large array (the tokenizer vocabulary: 150k strings, MBs to walk)
   * when this says the metadata read so far is enough. llama.cpp's converters write general.*
   * and <arch>.* before tokenizer.*, so a scan gets everything it shows without the vocabulary.
   */
  stopBeforeLargeArrays?: (metadata: Record<string, GgufValue>, key: string) => boolean;
  /**
   * Also read the tensor infos that follow the metadata (name, shape, type; not the data). The
   * memory estimate needs them: weight bytes per layer decide what fits on which device. Costs
   * walking the vocabulary (the infos come after it): ~1 ms for a 150k vocabulary.
   */
  tensors?: boolean;
  /**
   * Keep the values of numeric/bool arrays of at most 64 elements (per-layer head counts,
   * sliding-window patterns of hybrid models); longer ones stay skipped.
   */
  smallArrays?: boolean;
}

/**
 * ggml_type -> [elements per block, bytes per block], from ggml/src/ggml-common.h (the
 * static_asserts on each block_* struct) and ggml.h's enum. Types not listed (removed ones)
 * make the reader refuse the tensor rather than guess its size.
 */
export const GGML_TYPE_SIZE: Readonly<Record<number, readonly [number, number]>> = {
  0: [1, 4], // F32
  1: [1, 2], // F16
  2: [32, 18], // Q4_0
  3: [32, 20], // Q4_1
  6: [32, 22], // Q5_0
  7: [32, 24], // Q5_1
  8: [32, 34], // Q8_0
  9: [32, 36], // Q8_1
  10: [256, 84], // Q2_K
  11: [256, 110], // Q3_K
  12: [256, 144], // Q4_K
  13: [256, 176], // Q5_K
  14: [256, 210], // Q6_K
  15: [256, 292], // Q8_K
  16: [256, 66], // IQ2_XXS
  17: [256, 74], // IQ2_XS
  18: [256, 98], // IQ3_XXS
  19: [256, 50], // IQ1_S
  20: [32, 18], // IQ4_NL
  21: [256, 110], // IQ3_S
  22: [256, 82], // IQ2_S
  23: [256, 136], // IQ4_XS
  24: [1, 1], // I8
  25: [1, 2], // I16
  26: [1, 4], // I32
  27: [1, 8], // I64
  28: [1, 8], // F64
  29: [256, 56], // IQ1_M
  30: [1, 2], // BF16
  34: [256, 54], // TQ1_0
  35: [256, 66], // TQ2_0
  39: [32, 17], // MXFP4
  40: [64, 36], // NVFP4
  41: [128, 18], // Q1_0
  42: [64, 18], // Q2_0
};

/** Bytes of a tensor of `type` with shape `dims` (rows are whole blocks, as ggml_row_size). */
export function ggmlTensorBytes(type: number, dims: readonly number[]): number {
  const size = GGML_TYPE_SIZE[type];
  if (!size) throw new GgufError(`unknown ggml tensor type ${type}`);
  const [block, bytes] = size;
  const row = dims[0] ?? 1;
  if (row % block !== 0) throw new GgufError(`tensor row of ${row} elements is not a whole number of ${block}-element blocks`);
  let rows = 1;
  for (let i = 1; i < dims.length; i++) rows *= dims[i]!;
  return (row / block) * bytes * rows;
}

/** Tensors per file beyond which the header is treated as corrupt (real models: < 5,000). */
const MAX_TENSORS = 1_000_000;

/**
 * Discovery's stop rule: the architecture is known and either everything it shows is known or
 * the tokenizer section begins (old conversions have no general.file_type at all; walking their
 * vocabulary would find nothing more). Checked against the 19 real ggml-vocab-*.gguf files of
 * llama.cpp in tests/unit/gguf.test.ts.
 */
export const enoughForDiscovery = (m: Record<string, GgufValue>, key: string): boolean => {
  const arch = m["general.architecture"];
  if (typeof arch !== "string") return false;
  return key.startsWith("tokenizer.") || (m["general.file_type"] !== undefined && m[`${arch}.context_length`] !== undefined);
};

/** Arrays before the tokenizer are short (tags, languages, rope sections); the vocabulary is not. */
const LARGE_ARRAY = 64;

export class GgufError extends Error {
  override name = "GgufError";
}

/** First read: general.* and <arch>.* keys fit in a few KB. Grows by doubling when needed. */
const INITIAL_CHUNK = 16 * 1024;
const MAX_CHUNK = 8 * 1024 * 1024;
/** Sanity limits against corrupt or hostile headers. */
const MAX_KV = 1_000_000;
const MAX_STRING = 64 * 1024 * 1024;

/** Where header bytes come from: a file descriptor (positioned reads) or, in tests, memory. */
interface ByteSource {
  size: number;
  read(pos: number, len: number): Uint8Array;
}

/**
 * A forward-only cursor that reads more of the file only when the parser needs more.
 *
 * Synchronous on purpose: a header is a few small positioned reads (pread, tens of µs from the
 * page cache), and parsing it with an await per field cost ~10x more than the reads themselves
 * (measured: 1,000 headers in ~300 ms async vs ~30 ms sync). Discovery yields to the event loop
 * between files, so a scan does not stall requests.
 */
class FileCursor {
  private buf: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(this.buf.buffer);
  /** File offset of buf[0]. */
  private base = 0;
  /** Current absolute file offset. */
  pos = 0;
  bytesRead = 0;
  private chunk = INITIAL_CHUNK;
  littleEndian = true;

  constructor(private readonly src: ByteSource) {}

  get size(): number {
    return this.src.size;
  }

  /** Makes sure [pos, pos+n) is in the buffer, reading forward from pos if it is not. */
  need(n: number): void {
    if (this.pos + n > this.size) throw new GgufError(`truncated header (needs byte ${this.pos + n}, file has ${this.size})`);
    if (this.pos >= this.base && this.pos + n <= this.base + this.buf.length) return;
    // Read from pos (never re-read what we already passed), bigger each time a header turns out long.
    const len = Math.min(this.size - this.pos, Math.max(n, this.chunk));
    const bytes = this.src.read(this.pos, len);
    if (bytes.length < n) throw new GgufError("file shrank while being read");
    this.buf = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.base = this.pos;
    this.bytesRead += bytes.length;
    this.chunk = Math.min(MAX_CHUNK, this.chunk * 2);
  }

  /** Moves forward without reading (an array we do not want). */
  skip(n: number): void {
    if (this.pos + n > this.size) throw new GgufError(`truncated header (skips past end of file at ${this.pos + n})`);
    this.pos += n;
  }

  private at(): number {
    return this.pos - this.base;
  }

  u8(): number { this.need(1); const v = this.view.getUint8(this.at()); this.pos += 1; return v; }
  i8(): number { this.need(1); const v = this.view.getInt8(this.at()); this.pos += 1; return v; }
  u16(): number { this.need(2); const v = this.view.getUint16(this.at(), this.littleEndian); this.pos += 2; return v; }
  i16(): number { this.need(2); const v = this.view.getInt16(this.at(), this.littleEndian); this.pos += 2; return v; }
  u32(): number { this.need(4); const v = this.view.getUint32(this.at(), this.littleEndian); this.pos += 4; return v; }
  i32(): number { this.need(4); const v = this.view.getInt32(this.at(), this.littleEndian); this.pos += 4; return v; }
  f32(): number { this.need(4); const v = this.view.getFloat32(this.at(), this.littleEndian); this.pos += 4; return v; }
  f64(): number { this.need(8); const v = this.view.getFloat64(this.at(), this.littleEndian); this.pos += 8; return v; }
  u64(): bigint { this.need(8); const v = this.view.getBigUint64(this.at(), this.littleEndian); this.pos += 8; return v; }
  i64(): bigint { this.need(8); const v = this.view.getBigInt64(this.at(), this.littleEndian); this.pos += 8; return v; }

  /**
   * A u64 as a Number, from the bytes directly: no BigInt, no DataView call (both measured
   * several times slower in this loop, which runs once per vocabulary string).
   */
  u64n(): number {
    this.need(8);
    const b = this.buf;
    const i = this.pos - this.base;
    this.pos += 8;
    if (this.littleEndian) {
      return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16)) + b[i + 3]! * 0x1000000 + (b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16)) * 0x100000000 + b[i + 7]! * 0x100000000000000;
    }
    return (b[i + 7]! | (b[i + 6]! << 8) | (b[i + 5]! << 16)) + b[i + 4]! * 0x1000000 + (b[i + 3]! | (b[i + 2]! << 8) | (b[i + 1]! << 16)) * 0x100000000 + b[i]! * 0x100000000000000;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.at(), this.at() + n);
    this.pos += n;
    return out;
  }
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/** Reads the GGUF header of a file (path) or of bytes in memory. Throws GgufError on a non-GGUF or corrupt file. */
export function readGgufHeaderSync(source: string | Uint8Array, options: ReadOptions = {}): GgufHeader {
  if (typeof source !== "string") {
    return parseHeader({ size: source.length, read: (pos, len) => source.subarray(pos, pos + len) }, options);
  }
  const fd = openSync(source, "r");
  try {
    const size = fstatSync(fd).size;
    return parseHeader(
      {
        size,
        read: (pos, len) => {
          const buf = new Uint8Array(len);
          let got = 0;
          while (got < len) {
            const n = readSync(fd, buf, got, len - got, pos + got);
            if (n === 0) break;
            got += n;
          }
          return got === len ? buf : buf.subarray(0, got);
        },
      },
      options,
    );
  } finally {
    closeSync(fd);
  }
}

/** Promise form of readGgufHeaderSync (errors become rejections). */
export async function readGgufHeader(source: string | Uint8Array, options: ReadOptions = {}): Promise<GgufHeader> {
  return readGgufHeaderSync(source, options);
}

function parseHeader(src: ByteSource, options: ReadOptions): GgufHeader {
  const size = src.size;
  if (size < 8) throw new GgufError("not a GGUF file (too small)");
  const c = new FileCursor(src);

  const magic = c.u32();
  if (magic !== GGUF_MAGIC) throw new GgufError("not a GGUF file (bad magic)");
  let version = c.u32();
  // A big-endian GGUF (s390x builds) shows its small version number byte-swapped.
  if (version > 0xffff && (version & 0xffff) === 0) {
    c.littleEndian = false;
    version = ((version >>> 24) | ((version >>> 8) & 0xff00)) >>> 0;
  }
  if (version < 1 || version > 3) throw new GgufError(`unsupported GGUF version ${version}`);
  const v1 = version === 1;
  const count = (): number => {
    const n = v1 ? c.u32() : c.u64n();
    return n;
  };

  const tensorCount = count();
  const kvCount = count();
  if (kvCount > MAX_KV) throw new GgufError(`implausible metadata count ${kvCount}`);

  const readString = (): string => {
    const len = count();
    if (len > MAX_STRING) throw new GgufError(`implausible string length ${len}`);
    return decoder.decode(c.bytes(len));
  };

  const readScalar = (type: GgufType): GgufValue => {
    switch (type) {
      case GgufType.UINT8: return c.u8();
      case GgufType.INT8: return c.i8();
      case GgufType.UINT16: return c.u16();
      case GgufType.INT16: return c.i16();
      case GgufType.UINT32: return c.u32();
      case GgufType.INT32: return c.i32();
      case GgufType.FLOAT32: return c.f32();
      case GgufType.BOOL: return (c.u8()) !== 0;
      case GgufType.STRING: return readString();
      case GgufType.UINT64: { const v = c.u64(); return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v; }
      case GgufType.INT64: { const v = c.i64(); return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v; }
      case GgufType.FLOAT64: return c.f64();
      default: throw new GgufError(`unknown value type ${type} at byte ${c.pos}`);
    }
  };

  /** Skips an array without building it: jump over fixed-size elements, walk strings and nested arrays. */
  const skipArray = (): GgufArrayInfo => {
    const type = (c.u32()) as GgufType;
    const length = count();
    const fixed = FIXED_SIZE[type];
    if (fixed !== undefined && options.smallArrays && length <= LARGE_ARRAY) {
      const values: number[] = [];
      for (let i = 0; i < length; i++) {
        const v = readScalar(type);
        values.push(typeof v === "bigint" ? Number(v) : typeof v === "boolean" ? (v ? 1 : 0) : (v as number));
      }
      return { array: true, type, length, values };
    }
    if (fixed !== undefined) {
      c.skip(length * fixed);
    } else if (type === GgufType.STRING) {
      // The vocabulary: ~150k strings in real models. Stay synchronous while the bytes are buffered;
      // an per element would cost a microtask each.
      const w = v1 ? 4 : 8;
      for (let i = 0; i < length; i++) {
        const len = v1 ? c.u32() : c.u64n();
        if (len > MAX_STRING) throw new GgufError(`implausible string length ${len}`);
        c.skip(len);
      }
    } else if (type === GgufType.ARRAY) {
      for (let i = 0; i < length; i++) skipArray();
    } else {
      throw new GgufError(`unknown array element type ${type} at byte ${c.pos}`);
    }
    return { array: true, type, length };
  };

  const metadata: Record<string, GgufValue> = {};
  const stop = options.stopBeforeLargeArrays;
  for (let i = 0; i < kvCount; i++) {
    const key = readString();
    const type = (c.u32()) as GgufType;
    if (type === GgufType.ARRAY && stop) {
      // Peek at the element type and length (12 bytes, 8 in v1) without consuming them.
      const at = c.pos;
      c.u32();
      const length = count();
      c.pos = at;
      if (length > LARGE_ARRAY && stop(metadata, key)) {
        return { version, littleEndian: c.littleEndian, tensorCount, metadata, bytesRead: c.bytesRead, complete: false };
      }
    }
    metadata[key] = type === GgufType.ARRAY ? skipArray() : readScalar(type);
  }
  const header: GgufHeader = { version, littleEndian: c.littleEndian, tensorCount, metadata, bytesRead: c.bytesRead, complete: true };
  if (options.tensors) {
    if (tensorCount > MAX_TENSORS) throw new GgufError(`implausible tensor count ${tensorCount}`);
    // Layout per tensor: string name, u32 n_dims, n_dims x u64 (u32 in v1) dims, u32 type, u64 offset.
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = readString();
      const nDims = c.u32();
      if (nDims > 8) throw new GgufError(`tensor ${name} has ${nDims} dimensions`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(count());
      const type = c.u32();
      c.u64n(); // offset into the data section: not needed
      tensors.push({ name, dims, type, bytes: ggmlTensorBytes(type, dims) });
    }
    header.tensors = tensors;
    header.bytesRead = c.bytesRead;
  }
  return header;
}

/**
 * llama.cpp's LLAMA_FTYPE enum (include/llama.h) -> the label people use. Checked against the
 * llama.cpp sources shipped with node-llama-cpp (values 33-35 were removed upstream).
 */
export const FILE_TYPE_LABELS: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
  10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
  17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS",
  24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS",
  31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
};

/** The metadata a model entry needs, picked out of a header. */
export interface GgufSummary {
  architecture?: string;
  name?: string;
  description?: string;
  version?: string;
  fileType?: number;
  quantization?: string;
  contextSize?: number;
  /** split.count / split.no (0-based) when the file is a shard written by gguf-split. */
  splitCount?: number;
  splitNo?: number;
}

const str = (v: GgufValue | undefined) => (typeof v === "string" && v.trim() ? v.trim() : undefined);
const num = (v: GgufValue | undefined) =>
  typeof v === "number" && Number.isFinite(v) ? v : typeof v === "bigint" ? Number(v) : undefined;

export function summarizeGguf(header: GgufHeader): GgufSummary {
  const m = header.metadata;
  const architecture = str(m["general.architecture"]);
  const fileType = num(m["general.file_type"]);
  const ctx = architecture ? num(m[`${architecture}.context_length`]) : undefined;
  const out: GgufSummary = {};
  if (architecture) out.architecture = architecture;
  const name = str(m["general.name"]);
  if (name) out.name = name;
  const description = str(m["general.description"]);
  if (description) out.description = description;
  const version = str(m["general.version"]);
  if (version) out.version = version;
  if (fileType !== undefined) {
    out.fileType = fileType;
    const label = FILE_TYPE_LABELS[fileType];
    if (label) out.quantization = label;
  }
  if (ctx !== undefined && ctx > 0) out.contextSize = ctx;
  const splitCount = num(m["split.count"]);
  if (splitCount !== undefined) out.splitCount = splitCount;
  const splitNo = num(m["split.no"]);
  if (splitNo !== undefined) out.splitNo = splitNo;
  return out;
}

/** True when the file starts with "GGUF" (split parts and projectors are checked with this). */
export async function hasGgufMagic(path: string): Promise<boolean> {
  try {
    const head = new Uint8Array(await Bun.file(path).slice(0, 4).arrayBuffer());
    return head.length === 4 && new DataView(head.buffer).getUint32(0, true) === GGUF_MAGIC;
  } catch {
    return false;
  }
}
