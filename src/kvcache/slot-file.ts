/**
 * Reads the token prefix out of a file written by llama-server's `POST /slots/{id}?action=save`.
 *
 * The layout is llama.cpp's `llama_state_seq_save_file` (src/llama-context.cpp, state version 3):
 *   u32 magic 'ggsq' (0x67677371) | u32 version (3) | u32 n_token_count | n_token_count x i32 | sequence state
 * The tokens are what the server passes in: since late 2026 the server packs its
 * `server_tokens` there (tools/server/server-common.cpp `server_tokens::serialize`):
 *   i32 LLAMA_TOKEN_NULL (-1) | u32 version (1) | u32 n | n x i32 tokens | u32 n_media | media chunks
 * and older servers wrote the plain token list; `server_tokens::deserialize` accepts both, so do we.
 *
 * Reading the prefix from the file itself (instead of trusting what we were told when saving)
 * means the index never disagrees with the file: a file we cannot parse is not restorable.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";

export const SLOT_FILE_MAGIC = 0x67677371;
export const SLOT_FILE_VERSION = 3;
const LLAMA_TOKEN_NULL = -1;
const SERVER_TOKENS_STATE_VERSION = 1;

export class SlotFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SlotFileError";
  }
}

/** Parses the header of a slot file already in memory (at least the header and token bytes). */
export function parseSlotFileHeader(buf: Uint8Array, fileSize = buf.byteLength): { tokens: Int32Array; headerBytes: number } {
  if (buf.byteLength < 12) throw new SlotFileError("file too short for a slot header");
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0, true);
  const version = view.getUint32(4, true);
  if (magic !== SLOT_FILE_MAGIC) throw new SlotFileError(`not a llama.cpp sequence state file (magic ${magic.toString(16)})`);
  if (version !== SLOT_FILE_VERSION) throw new SlotFileError(`unsupported sequence state version ${version}`);
  const count = view.getUint32(8, true);
  const headerBytes = 12 + count * 4;
  if (headerBytes > fileSize) throw new SlotFileError(`token count ${count} exceeds the file size`);
  if (headerBytes > buf.byteLength) throw new SlotFileError("header not fully read");
  const packed = new Int32Array(count);
  for (let i = 0; i < count; i++) packed[i] = view.getInt32(12 + i * 4, true);
  return { tokens: unpackServerTokens(packed), headerBytes };
}

/** server_tokens::deserialize for text-only prompts. Media chunks make a file unusable to us. */
export function unpackServerTokens(packed: Int32Array): Int32Array {
  if (packed.length === 0 || packed[0] !== LLAMA_TOKEN_NULL) return packed; // plain list (older servers)
  if (packed.length < 3) throw new SlotFileError("truncated server token state");
  if (packed[1] !== SERVER_TOKENS_STATE_VERSION) throw new SlotFileError(`unsupported server token state version ${packed[1]}`);
  const n = packed[2]! >>> 0;
  if (3 + n + 1 > packed.length) throw new SlotFileError("server token state shorter than its token count");
  const media = packed[3 + n]! >>> 0;
  if (media !== 0) throw new SlotFileError("the slot holds media (images/audio); only text prefixes are matched");
  return packed.subarray(3, 3 + n);
}

/** Writes the header the real server writes (the fake llama-server and the tests use it). */
export function encodeSlotFileHeader(tokens: ArrayLike<number>): Uint8Array {
  const n = tokens.length;
  const packedCount = 3 + n + 1;
  const buf = new Uint8Array(12 + packedCount * 4);
  const view = new DataView(buf.buffer);
  view.setUint32(0, SLOT_FILE_MAGIC, true);
  view.setUint32(4, SLOT_FILE_VERSION, true);
  view.setUint32(8, packedCount, true);
  let o = 12;
  const put = (v: number) => {
    view.setInt32(o, v, true);
    o += 4;
  };
  put(LLAMA_TOKEN_NULL);
  put(SERVER_TOKENS_STATE_VERSION);
  put(n);
  for (let i = 0; i < n; i++) put(tokens[i]!);
  put(0); // no media
  return buf;
}

/** Reads only the header of a slot file on disk (a few KB for thousands of tokens, never the state). */
export function readSlotFileTokens(path: string, maxTokens = 8_388_608): Int32Array {
  const size = statSync(path).size;
  const fd = openSync(path, "r");
  try {
    const head = new Uint8Array(12);
    if (readSync(fd, head, 0, 12, 0) !== 12) throw new SlotFileError("file too short for a slot header");
    const count = new DataView(head.buffer).getUint32(8, true);
    if (count > maxTokens) throw new SlotFileError(`token count ${count} is beyond any context size`);
    const len = Math.min(size, 12 + count * 4);
    const buf = new Uint8Array(len);
    buf.set(head);
    let off = 12;
    while (off < len) {
      const n = readSync(fd, buf, off, len - off, off);
      if (n <= 0) break;
      off += n;
    }
    return parseSlotFileHeader(buf.subarray(0, off), size).tokens;
  } finally {
    closeSync(fd);
  }
}

/**
 * CRC-32 of a whole file, read as a stream. llama-server checks a restored file's structure (magic,
 * version, shapes) but not its contents: flipped bytes in the KV data would be restored silently
 * and poison every answer of that conversation. CRC-32 runs at ~4.8 GB/s in Bun (bench on the
 * CI-type machine: sha256 220 MB/s, sha1 390 MB/s), so disk speed, not the hash, bounds the check.
 */
export async function fileCrc32(path: string, signal?: AbortSignal): Promise<number> {
  let crc = 0;
  const reader = Bun.file(path).stream().getReader();
  try {
    for (;;) {
      signal?.throwIfAborted();
      const { value, done } = await reader.read();
      if (done) return crc;
      crc = Bun.hash.crc32(value, crc);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
