import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { FILE_TYPE_LABELS, GgufError, GgufType, enoughForDiscovery, readGgufHeader, summarizeGguf } from "../../src/models/gguf";
import { ggufBytes, modelMetadata, writeGguf, writeModel } from "../fixtures/gguf-writer";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "gguf-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("readGgufHeader", () => {
  test("reads architecture, name, file type, context length and version of a v3 header", async () => {
    const p = join(dir, "llama.gguf");
    writeModel(p, { arch: "llama", name: "Llama 3 8B", fileType: 15, contextLength: 8192, version: "3.0", description: "Llama 3 Base model" });
    const h = await readGgufHeader(p);
    expect(h.version).toBe(3);
    expect(h.tensorCount).toBe(12);
    expect(h.metadata["general.architecture"]).toBe("llama");
    expect(h.metadata["llama.rope.freq_base"]).toBeCloseTo(10000.5, 1);
    expect(summarizeGguf(h)).toEqual({
      architecture: "llama",
      name: "Llama 3 8B",
      description: "Llama 3 Base model",
      version: "3.0",
      fileType: 15,
      quantization: "Q4_K_M",
      contextSize: 8192,
    });
  });

  test("context length is looked up under the file's own architecture", async () => {
    const p = join(dir, "qwen.gguf");
    writeGguf(p, { metadata: { "general.architecture": "qwen2", "llama.context_length": 4096, "qwen2.context_length": 32768, "general.file_type": 7 } });
    const s = summarizeGguf(await readGgufHeader(p));
    expect(s.contextSize).toBe(32768);
    expect(s.quantization).toBe("Q8_0");
  });

  test("skips a large vocabulary without materialising it and still finds keys after it", async () => {
    const p = join(dir, "vocab.gguf");
    const meta = modelMetadata({ arch: "gemma", name: "G", vocab: 20_000, contextLength: 2048 });
    meta["general.file_type"] = 1; // after the arrays, as llama-quantize appends it
    writeGguf(p, { metadata: meta });
    const h = await readGgufHeader(p);
    expect(h.metadata["tokenizer.ggml.tokens"]).toEqual({ array: true, type: GgufType.STRING, length: 20_000 });
    expect(h.metadata["tokenizer.ggml.scores"]).toEqual({ array: true, type: GgufType.FLOAT32, length: 20_000 });
    expect(summarizeGguf(h).quantization).toBe("F16");
    expect(summarizeGguf(h).contextSize).toBe(2048);
  });

  test("stopBeforeLargeArrays: stops at the vocabulary once the essentials are known", async () => {
    const p = join(dir, "early.gguf");
    writeGguf(p, { metadata: modelMetadata({ arch: "llama", name: "E", fileType: 15, contextLength: 4096, vocab: 30_000 }) });
    const full = await readGgufHeader(p);
    const early = await readGgufHeader(p, { stopBeforeLargeArrays: enoughForDiscovery });
    expect(full.complete).toBe(true);
    expect(early.complete).toBe(false);
    expect(summarizeGguf(early)).toEqual(summarizeGguf(full));
    expect(early.metadata["tokenizer.ggml.tokens"]).toBeUndefined();
    expect(early.bytesRead).toBeLessThan(full.bytesRead / 4);
    // A large array that is not the tokenizer, before the essentials: walked, reading goes on.
    const late = join(dir, "late.gguf");
    writeGguf(late, {
      metadata: {
        "general.architecture": "llama",
        "llama.rope.freqs": { type: GgufType.ARRAY, elementType: GgufType.FLOAT32, values: new Array(4096).fill(1) },
        "llama.context_length": 4096,
        "general.file_type": 7,
        ...modelMetadata({ arch: "llama", vocab: 2000 }),
      },
    });
    const h = await readGgufHeader(late, { stopBeforeLargeArrays: enoughForDiscovery });
    expect(h.complete).toBe(false);
    expect(h.metadata["llama.rope.freqs"]).toEqual({ array: true, type: GgufType.FLOAT32, length: 4096 });
    expect(summarizeGguf(h)).toMatchObject({ quantization: "Q8_0", contextSize: 4096 });
    // The tokenizer section ends the read even when general.file_type was never seen (old
    // conversions have none); discovery then takes the label from the file name.
    const old = join(dir, "old-conversion.gguf");
    writeGguf(old, { metadata: modelMetadata({ arch: "mpt", contextLength: 2048, vocab: 5000 }) });
    const o = await readGgufHeader(old, { stopBeforeLargeArrays: enoughForDiscovery });
    expect(o.complete).toBe(false);
    expect(summarizeGguf(o)).toEqual({ architecture: "mpt", contextSize: 2048 });
  });

  test("reads only the header of a huge (sparse) file", async () => {
    const p = join(dir, "huge.gguf");
    writeModel(p, { arch: "llama", name: "Big", fileType: 18, contextLength: 4096, size: 8 * 1024 ** 3 });
    const h = await readGgufHeader(p);
    expect(summarizeGguf(h).quantization).toBe("Q6_K");
    expect(h.bytesRead).toBeLessThanOrEqual(64 * 1024);
  });

  test("numeric arrays are jumped over without reading them", async () => {
    const p = join(dir, "numarr.gguf");
    // 1.2 MB of f32 scores then a key: the reader must seek over them, not read them.
    writeGguf(p, {
      metadata: {
        "general.architecture": "phi3",
        "tokenizer.ggml.scores": { type: GgufType.ARRAY, elementType: GgufType.FLOAT32, values: new Array(300_000).fill(0.5) },
        "phi3.context_length": 131072,
      },
    });
    const h = await readGgufHeader(p);
    expect(summarizeGguf(h).contextSize).toBe(131072);
    expect(h.bytesRead).toBeLessThan(200 * 1024);
  });

  test("version 1 (32-bit counts) and version 2 headers", async () => {
    for (const version of [1, 2] as const) {
      const p = join(dir, `v${version}.gguf`);
      writeGguf(p, { version, metadata: modelMetadata({ arch: "falcon", name: "F", fileType: 2, contextLength: 2048, vocab: 100 }) });
      const h = await readGgufHeader(p);
      expect(h.version).toBe(version);
      expect(summarizeGguf(h)).toMatchObject({ architecture: "falcon", quantization: "Q4_0", contextSize: 2048 });
    }
  });

  test("big-endian header", async () => {
    const p = join(dir, "be.gguf");
    writeGguf(p, {
      bigEndian: true,
      metadata: {
        "general.architecture": "llama",
        "tokenizer.ggml.tokens": { type: GgufType.ARRAY, elementType: GgufType.STRING, values: ["a", "bb", "ccc"] },
        "llama.context_length": 4096,
        "general.file_type": 17,
      },
    });
    const h = await readGgufHeader(p);
    expect(h.littleEndian).toBe(false);
    expect(h.metadata["tokenizer.ggml.tokens"]).toEqual({ array: true, type: GgufType.STRING, length: 3 });
    expect(summarizeGguf(h)).toMatchObject({ quantization: "Q5_K_M", contextSize: 4096 });
  });

  test("64-bit and signed values, nested arrays, split keys", async () => {
    const p = join(dir, "types.gguf");
    writeGguf(p, {
      metadata: {
        "general.architecture": "llama",
        "llama.context_length": { type: GgufType.UINT64, value: 65536n },
        "x.i64": { type: GgufType.INT64, value: -5n },
        "x.f64": { type: GgufType.FLOAT64, value: 2.5 },
        "x.i8": { type: GgufType.INT8, value: -3 },
        "x.bool": true,
        "split.no": { type: GgufType.UINT16, value: 0 },
        "split.count": { type: GgufType.UINT16, value: 3 },
      },
    });
    const h = await readGgufHeader(p);
    expect(h.metadata["x.i64"]).toBe(-5);
    expect(h.metadata["x.f64"]).toBe(2.5);
    expect(h.metadata["x.i8"]).toBe(-3);
    expect(h.metadata["x.bool"]).toBe(true);
    expect(summarizeGguf(h)).toMatchObject({ contextSize: 65536, splitCount: 3, splitNo: 0 });
  });

  test("rejects non-GGUF and truncated files with a GgufError", async () => {
    const junk = join(dir, "junk.gguf");
    writeFileSync(junk, "this is not a model at all, just text");
    await expect(readGgufHeader(junk)).rejects.toThrow(/bad magic/);
    const tiny = join(dir, "tiny.gguf");
    writeFileSync(tiny, "GGU");
    await expect(readGgufHeader(tiny)).rejects.toBeInstanceOf(GgufError);
    const full = ggufBytes({ metadata: modelMetadata({ arch: "llama", name: "T", vocab: 10 }) });
    const cut = join(dir, "cut.gguf");
    writeFileSync(cut, full.subarray(0, full.length - 7));
    await expect(readGgufHeader(cut)).rejects.toThrow(/truncated/);
  });

  test("a string length past the end of the file is refused, not allocated", async () => {
    const bytes = ggufBytes({ metadata: { "general.architecture": "llama" } });
    // Corrupt the key length (u64 right after the 24-byte preamble) to 2^40.
    new DataView(bytes.buffer).setBigUint64(24, 1n << 40n, true);
    await expect(readGgufHeader(bytes)).rejects.toBeInstanceOf(GgufError);
  });

  test("file type labels follow llama.cpp's LLAMA_FTYPE enum", () => {
    expect(FILE_TYPE_LABELS[0]).toBe("F32");
    expect(FILE_TYPE_LABELS[15]).toBe("Q4_K_M");
    expect(FILE_TYPE_LABELS[30]).toBe("IQ4_XS");
    expect(FILE_TYPE_LABELS[32]).toBe("BF16");
    expect(FILE_TYPE_LABELS[38]).toBe("MXFP4");
    expect(FILE_TYPE_LABELS[33]).toBeUndefined();
  });

  test("the enum matches llama.h when the llama.cpp sources are present", async () => {
    const h = join(homedir(), ".cache/llama-async-proxy/llama.cpp/src/include/llama.h");
    if (!existsSync(h)) {
      console.warn(`skipping llama.h cross-check: ${h} not found (run shared/tools/build-llama-server.sh)`);
      return;
    }
    const text = await Bun.file(h).text();
    const found = [...text.matchAll(/^\s*LLAMA_FTYPE_(?:MOSTLY_|ALL_)(\w+)\s*=\s*(\d+),/gm)];
    expect(found.length).toBeGreaterThan(30);
    for (const [, name, value] of found) {
      const label = FILE_TYPE_LABELS[Number(value)];
      // MXFP4_MOE is shown as MXFP4 (what people and file names call it).
      expect(label).toBe(name === "MXFP4_MOE" ? "MXFP4" : name!);
    }
  });

  test("llama.cpp's own GGUF files (ggml-vocab-*.gguf): parsed, and the early stop loses nothing", async () => {
    const d = join(homedir(), ".cache/llama-async-proxy/llama.cpp/src/models");
    const files = existsSync(d) ? readdirSync(d).filter((f) => f.endsWith(".gguf")) : [];
    if (!files.length) {
      console.warn(`skipping real-file check: no ggml-vocab-*.gguf in ${d} (run shared/tools/build-llama-server.sh)`);
      return;
    }
    for (const f of files) {
      const full = await readGgufHeader(join(d, f));
      const early = await readGgufHeader(join(d, f), { stopBeforeLargeArrays: enoughForDiscovery });
      expect(typeof full.metadata["general.architecture"]).toBe("string");
      expect((full.metadata["tokenizer.ggml.tokens"] as { length: number }).length).toBeGreaterThan(1000);
      const { splitCount, splitNo, ...shown } = summarizeGguf(full);
      expect(summarizeGguf(early)).toEqual(shown);
      expect(early.bytesRead).toBeLessThanOrEqual(full.bytesRead);
    }
  });

  test("the real tiny model built by build-llama-server.sh", async () => {
    const p = process.env.LLAMA_TEST_MODEL ?? join(homedir(), ".cache/llama-async-proxy/llama.cpp/models/tiny-llama.gguf");
    if (!existsSync(p)) {
      console.warn(`skipping real-model check: ${p} not found (run shared/tools/build-llama-server.sh)`);
      return;
    }
    const h = await readGgufHeader(p);
    const s = summarizeGguf(h);
    // What shared/tools/make-tiny-gguf.py writes.
    expect(s).toMatchObject({ architecture: "llama", name: "tiny-llama-test", contextSize: 2048 });
    expect(Object.values(FILE_TYPE_LABELS)).toContain(s.quantization!);
    expect((h.metadata["tokenizer.ggml.tokens"] as { length: number }).length).toBe(32000);
    expect(h.bytesRead).toBeLessThan(Bun.file(p).size / 8);
  });
});
