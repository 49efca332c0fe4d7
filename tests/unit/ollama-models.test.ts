import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufType } from "../../src/models/gguf";
import { capabilitiesOf, HeaderCache, humanNumber, memoryOf, modelDigest, modelInfoOf, type HeaderFacts } from "../../src/ollama/models";
import { truncateAndNormalize } from "../../src/ollama/routes";
import { modelMetadata, writeGguf } from "../fixtures/gguf-writer";

const facts = (metadata: Record<string, unknown>, chatTemplate?: string): HeaderFacts => ({
  metadata: metadata as HeaderFacts["metadata"],
  architecture: metadata["general.architecture"] as string,
  chatTemplate,
});

describe("Ollama's model views", () => {
  test.each([
    [8_030_261_248, "8.0B"],
    [7_615_616_512, "7.6B"],
    [3_000_000_000, "3B"],
    [137_000_000, "137M"],
    [22_600_000, "22.60M"],
    [4_178_240, "4.18M"],
    [12_000, "12K"],
    [999, "999"],
  ])("humanNumber(%p) = %p, as Ollama's format.HumanNumber", (n, expected) => {
    expect(humanNumber(n)).toBe(expected);
  });

  test.each([
    ["a chat model", {}, facts({ "general.architecture": "llama" }, "{{ messages }}"), ["completion"]],
    ["an embedding model (pooling_type)", {}, facts({ "general.architecture": "bert", "bert.pooling_type": 1 }), ["embedding"]],
    ["with a projector", { mmprojPath: "/m/mmproj.gguf" }, facts({ "general.architecture": "llama" }), ["completion", "vision"]],
    ["a template that takes tools", {}, facts({ "general.architecture": "qwen2" }, "{% if tools %}...{% endif %}"), ["completion", "tools"]],
    ["a thinking template", {}, facts({ "general.architecture": "qwen3" }, "<think>\n</think>"), ["completion", "thinking"]],
    ["fill-in-the-middle tokens", {}, facts({ "general.architecture": "qwen2", "tokenizer.ggml.fim_pre_token_id": 5 }), ["completion", "insert"]],
    ["an unreadable header", {}, null, ["completion"]],
  ])("capabilities of %s", (_name, row, f, expected) => {
    expect(capabilitiesOf(row as { mmprojPath: string | null }, f)).toEqual(expected);
  });

  test("model_info: scalars as they are, big integers as numbers, arrays as [] and no template", () => {
    expect(
      modelInfoOf(facts({
        "general.architecture": "llama",
        "general.parameter_count": 8_030_261_248n,
        "llama.rope.freq_base": 500000,
        "tokenizer.ggml.tokens": { array: true, type: GgufType.STRING, length: 128256 },
        "tokenizer.chat_template": "{{ x }}",
      })),
    ).toEqual({ "general.architecture": "llama", "general.parameter_count": 8_030_261_248, "llama.rope.freq_base": 500000, "tokenizer.ggml.tokens": [] });
  });

  test.each([
    ["a placement on a GPU and the host", { placement: { devices: [{ id: "gpu0", bytes: 5e9 }, { id: "host", bytes: 1e9 }], gpus: [0] } }, { size: 6e9, sizeVram: 5e9 }],
    ["two GPUs", { placement: { devices: [{ id: "gpu0", bytes: 3e9 }, { id: "gpu1", bytes: 2e9 }], gpus: [0, 1] } }, { size: 5e9, sizeVram: 5e9 }],
    ["host only", { placement: { devices: [{ id: "host", bytes: 2e9 }], gpus: [] } }, { size: 2e9, sizeVram: 0 }],
    ["no placement, measured RSS", { memoryUsage: 512 }, { size: 512 * 1024 * 1024, sizeVram: 0 }],
    ["nothing known", {}, { size: 4096, sizeVram: 0 }],
  ])("size and size_vram from %s", (_name, rt, expected) => {
    expect(memoryOf({ size: 4096 }, rt)).toEqual(expected);
  });

  test("the digest is 64 hex digits, stable, and changes with the file", () => {
    const row = { path: "/m/a.gguf", size: 10, createdAt: "2026-01-01T00:00:00.000Z" };
    expect(modelDigest(row)).toMatch(/^[0-9a-f]{64}$/);
    expect(modelDigest(row)).toBe(modelDigest({ ...row }));
    expect(modelDigest({ ...row, size: 11 })).not.toBe(modelDigest(row));
  });

  test("dimensions: the first N components, unit length again", () => {
    const v = truncateAndNormalize([3, 4, 12], 2);
    expect(v).toEqual([0.6, 0.8]);
    expect(truncateAndNormalize([0, 0, 1], 2)).toEqual([0, 0]);
  });
});

describe("HeaderCache", () => {
  test("listing stops before the vocabulary; show reads the template after it; a changed file is read again", () => {
    const dir = mkdtempSync(join(tmpdir(), "lap-ollama-hdr-"));
    try {
      const path = join(dir, "m.gguf");
      const write = (name: string) =>
        writeGguf(path, {
          // As llama.cpp's converters write them: general.* first, the template after the vocabulary.
          metadata: {
            "general.parameter_count": { type: GgufType.UINT64, value: 1_000_000_000 },
            ...modelMetadata({ arch: "llama", name, fileType: 15, vocab: 200 }),
            "tokenizer.chat_template": "TEMPLATE",
          },
        });
      write("one");
      const cache = new HeaderCache();
      const short = cache.get(path)!;
      expect(short.parameterCount).toBe(1_000_000_000);
      expect(short.quantization).toBe("Q4_K_M");
      expect(short.chatTemplate).toBeUndefined(); // not read for a listing
      expect(cache.get(path, true)!.chatTemplate).toBe("TEMPLATE");
      expect(cache.get(path)!.chatTemplate).toBe("TEMPLATE"); // the full read serves listings too
      write("two-longer-name");
      utimesSync(path, new Date(), new Date(Date.now() + 5000));
      expect(cache.get(path)!.metadata["general.name"]).toBe("two-longer-name");
      expect(cache.get(join(dir, "missing.gguf"))).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
