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
}

export type GgufValue = string | number | bigint | boolean | GgufArrayInfo;

export interface GgufHeader {
  version: number;
  littleEndian: boolean;
  tensorCount: number;
  metadata: Record<string, GgufValue>;
  /** Bytes of the file actually read to get here (the point of this module). */
  bytesRead: number;
}

export class GgufError extends Error {
  override name = "GgufError";
}

/** First read; enough for most headers without a vocabulary. Grows by doubling when needed. */
const INITIAL_CHUNK = 64 * 1024;
const MAX_CHUNK = 8 * 1024 * 1024;
/** Sanity limits against corrupt or hostile headers. */
const MAX_KV = 1_000_000;
const MAX_STRING = 64 * 1024 * 1024;

/** A forward-only cursor over a file that reads more of it only when the parser needs more. */
class FileCursor {
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  /** File offset of buf[0]. */
  private base = 0;
  /** Current absolute file offset. */
  pos = 0;
  bytesRead = 0;
  private chunk = INITIAL_CHUNK;
  littleEndian = true;

  constructor(
    private readonly file: Blob,
    readonly size: number,
  ) {}

  /** Makes sure [pos, pos+n) is in the buffer, reading forward from pos if it is not. */
  async need(n: number): Promise<void> {
    if (this.pos + n > this.size) throw new GgufError(`truncated header (needs byte ${this.pos + n}, file has ${this.size})`);
    if (this.pos >= this.base && this.pos + n <= this.base + this.buf.length) return;
    const want = Math.max(n, this.chunk);
    // Read from pos (never re-read what we already passed), bigger each time a header turns out long.
    const end = Math.min(this.size, this.pos + want);
    const bytes = new Uint8Array(await this.file.slice(this.pos, end).arrayBuffer());
    if (bytes.length < n) throw new GgufError("file shrank while being read");
    this.buf = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.base = this.pos;
    this.bytesRead += bytes.length;
    this.chunk = Math.min(MAX_CHUNK, this.chunk * 2);
  }

  /** Moves forward without reading (a numeric array we do not want). */
  skip(n: number): void {
    if (this.pos + n > this.size) throw new GgufError(`truncated header (skips past end of file at ${this.pos + n})`);
    this.pos += n;
  }

  /** True when [pos, pos+n) is already buffered (lets hot loops stay synchronous). */
  has(n: number): boolean {
    return this.pos >= this.base && this.pos + n <= this.base + this.buf.length;
  }

  /** Synchronous reads; only after has()/need() said the bytes are there. */
  u32Sync(): number { const v = this.view.getUint32(this.at(), this.littleEndian); this.pos += 4; return v; }
  u64Sync(): bigint { const v = this.view.getBigUint64(this.at(), this.littleEndian); this.pos += 8; return v; }

  private at(): number {
    return this.pos - this.base;
  }

  async u8(): Promise<number> { await this.need(1); const v = this.view.getUint8(this.at()); this.pos += 1; return v; }
  async i8(): Promise<number> { await this.need(1); const v = this.view.getInt8(this.at()); this.pos += 1; return v; }
  async u16(): Promise<number> { await this.need(2); const v = this.view.getUint16(this.at(), this.littleEndian); this.pos += 2; return v; }
  async i16(): Promise<number> { await this.need(2); const v = this.view.getInt16(this.at(), this.littleEndian); this.pos += 2; return v; }
  async u32(): Promise<number> { await this.need(4); const v = this.view.getUint32(this.at(), this.littleEndian); this.pos += 4; return v; }
  async i32(): Promise<number> { await this.need(4); const v = this.view.getInt32(this.at(), this.littleEndian); this.pos += 4; return v; }
  async f32(): Promise<number> { await this.need(4); const v = this.view.getFloat32(this.at(), this.littleEndian); this.pos += 4; return v; }
  async f64(): Promise<number> { await this.need(8); const v = this.view.getFloat64(this.at(), this.littleEndian); this.pos += 8; return v; }
  async u64(): Promise<bigint> { await this.need(8); const v = this.view.getBigUint64(this.at(), this.littleEndian); this.pos += 8; return v; }
  async i64(): Promise<bigint> { await this.need(8); const v = this.view.getBigInt64(this.at(), this.littleEndian); this.pos += 8; return v; }

  async bytes(n: number): Promise<Uint8Array> {
    await this.need(n);
    const out = this.buf.subarray(this.at(), this.at() + n);
    this.pos += n;
    return out;
  }
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/** Reads the GGUF header of `path` (or of a Blob, for tests). Throws GgufError on a non-GGUF or corrupt file. */
export async function readGgufHeader(source: string | Blob): Promise<GgufHeader> {
  const file = typeof source === "string" ? Bun.file(source) : source;
  const size = file.size;
  if (size < 8) throw new GgufError("not a GGUF file (too small)");
  const c = new FileCursor(file, size);

  const magic = await c.u32();
  if (magic !== GGUF_MAGIC) throw new GgufError("not a GGUF file (bad magic)");
  let version = await c.u32();
  // A big-endian GGUF (s390x builds) shows its small version number byte-swapped.
  if (version > 0xffff && (version & 0xffff) === 0) {
    c.littleEndian = false;
    version = ((version >>> 24) | ((version >>> 8) & 0xff00)) >>> 0;
  }
  if (version < 1 || version > 3) throw new GgufError(`unsupported GGUF version ${version}`);
  const v1 = version === 1;
  const count = async (): Promise<number> => {
    const n = v1 ? await c.u32() : Number(await c.u64());
    return n;
  };

  const tensorCount = await count();
  const kvCount = await count();
  if (kvCount > MAX_KV) throw new GgufError(`implausible metadata count ${kvCount}`);

  const readString = async (): Promise<string> => {
    const len = await count();
    if (len > MAX_STRING) throw new GgufError(`implausible string length ${len}`);
    return decoder.decode(await c.bytes(len));
  };

  const readScalar = async (type: GgufType): Promise<GgufValue> => {
    switch (type) {
      case GgufType.UINT8: return c.u8();
      case GgufType.INT8: return c.i8();
      case GgufType.UINT16: return c.u16();
      case GgufType.INT16: return c.i16();
      case GgufType.UINT32: return c.u32();
      case GgufType.INT32: return c.i32();
      case GgufType.FLOAT32: return c.f32();
      case GgufType.BOOL: return (await c.u8()) !== 0;
      case GgufType.STRING: return readString();
      case GgufType.UINT64: { const v = await c.u64(); return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v; }
      case GgufType.INT64: { const v = await c.i64(); return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v; }
      case GgufType.FLOAT64: return c.f64();
      default: throw new GgufError(`unknown value type ${type} at byte ${c.pos}`);
    }
  };

  /** Skips an array without building it: jump over fixed-size elements, walk strings and nested arrays. */
  const skipArray = async (): Promise<GgufArrayInfo> => {
    const type = (await c.u32()) as GgufType;
    const length = await count();
    const fixed = FIXED_SIZE[type];
    if (fixed !== undefined) {
      c.skip(length * fixed);
    } else if (type === GgufType.STRING) {
      // The vocabulary: ~150k strings in real models. Stay synchronous while the bytes are buffered;
      // an await per element would cost a microtask each.
      const w = v1 ? 4 : 8;
      for (let i = 0; i < length; i++) {
        if (!c.has(w)) await c.need(w);
        const len = v1 ? c.u32Sync() : Number(c.u64Sync());
        if (len > MAX_STRING) throw new GgufError(`implausible string length ${len}`);
        c.skip(len);
      }
    } else if (type === GgufType.ARRAY) {
      for (let i = 0; i < length; i++) await skipArray();
    } else {
      throw new GgufError(`unknown array element type ${type} at byte ${c.pos}`);
    }
    return { array: true, type, length };
  };

  const metadata: Record<string, GgufValue> = {};
  for (let i = 0; i < kvCount; i++) {
    const key = await readString();
    const type = (await c.u32()) as GgufType;
    metadata[key] = type === GgufType.ARRAY ? await skipArray() : await readScalar(type);
  }
  return { version, littleEndian: c.littleEndian, tensorCount, metadata, bytesRead: c.bytesRead };
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
