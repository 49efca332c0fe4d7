import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufError, GgufType, ggmlTensorBytes, readGgufHeaderSync } from "../../src/models/gguf";
import { factsFromHeaders, readMemoryFacts, swaPattern, type ModelMemoryFacts } from "../../src/memory/facts";
import { DEFAULT_MEMORY_SETTINGS, effectiveContext, estimateMemory, kvBytesPerLayer, maxContextWithin, type MemorySettings } from "../../src/memory/estimate";
import { applyExtraArgs, memorySettingsOf, settingsKey } from "../../src/memory/settings";
import { ggufBytes, llamaModel, writeGguf, type LlamaShape } from "../fixtures/gguf-writer";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "mem-est-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A llama-shaped header with real tensor infos (what make-tiny-gguf.py writes, without data). */
const llamaHeader = (o: LlamaShape) => readGgufHeaderSync(ggufBytes(llamaModel(o)), { tensors: true, smallArrays: true });

const S = (over: Partial<MemorySettings> = {}): MemorySettings => ({ ...DEFAULT_MEMORY_SETTINGS, ...over });

describe("ggmlTensorBytes", () => {
  test.each([
    ["F32 64x10", 0, [64, 10], 2560],
    ["F16 64x10", 1, [64, 10], 1280],
    ["Q8_0 64", 8, [64], 68],
    ["Q4_0 4096x2", 2, [4096, 2], 4096 / 32 * 18 * 2],
    ["Q4_K 256x2", 12, [256, 2], 288],
    ["Q6_K 512", 14, [512], 420],
    ["IQ4_XS 256x3", 23, [256, 3], 408],
    ["MXFP4 32x4", 39, [32, 4], 68],
    ["BF16 3x3x3", 30, [3, 3, 3], 54],
  ])("%s", (_label, type, dims, bytes) => {
    expect(ggmlTensorBytes(type as number, dims as number[])).toBe(bytes as number);
  });

  test("an unknown type or a row that is not whole blocks is refused, not guessed", () => {
    expect(() => ggmlTensorBytes(4, [32])).toThrow(GgufError); // Q4_2: removed from ggml
    expect(() => ggmlTensorBytes(12, [100])).toThrow(/blocks/);
  });
});

describe("factsFromHeaders", () => {
  test("weights per layer, embedding and output come from the tensor infos", () => {
    const f = factsFromHeaders([llamaHeader({ layers: 3, embd: 64, heads: 4, kvHeads: 2, vocab: 1000 })]);
    const layer = 64 * 4 + 64 * 64 * 4 * 2 + 64 * 32 * 4 * 2 + 64 * 128 * 4 * 3 + 64 * 4;
    expect(f.weights.layers).toEqual([layer, layer, layer]);
    expect(f.weights.tokenEmbedding).toBe(64 * 1000 * 4);
    expect(f.weights.output).toBe(64 * 1000 * 4 + 64 * 4);
    expect(f.weights.total).toBe(3 * layer + 64 * 1000 * 4 * 2 + 64 * 4);
    expect(f.vocab).toBe(1000);
    expect(f.kvHeads).toEqual([2, 2, 2]);
    expect(f.keyLength).toBe(16);
    expect(f.swaLayers.some(Boolean)).toBe(false);
  });

  test("the tensors of every split part and of the projector are counted", () => {
    const a = llamaHeader({ layers: 2, embd: 64, heads: 4, kvHeads: 4, vocab: 100 });
    const b = readGgufHeaderSync(ggufBytes({ metadata: { "split.no": 1 }, tensors: [{ name: "blk.1.extra.weight", dims: [64, 64], type: 0 }] }), { tensors: true });
    const mm = readGgufHeaderSync(ggufBytes({ metadata: { "general.architecture": "clip" }, tensors: [{ name: "v.patch", dims: [1024, 256], type: 1 }] }), { tensors: true });
    const one = factsFromHeaders([a]);
    const all = factsFromHeaders([a, b], mm);
    expect(all.weights.layers[1]! - one.weights.layers[1]!).toBe(64 * 64 * 4);
    expect(all.weights.mmproj).toBe(1024 * 256 * 2);
    expect(all.files).toBe(3);
  });

  test("sliding window: the architecture's period (gemma3: 5 of 6), or the file's own per-layer flags", () => {
    const g = factsFromHeaders([llamaHeader({ arch: "gemma3", layers: 12, embd: 64, heads: 4, kvHeads: 1, extra: { "gemma3.attention.sliding_window": 512 } })]);
    expect(g.slidingWindow).toBe(512);
    expect(g.swaLayers).toEqual(swaPattern(12, 6));
    expect(g.swaLayers.filter(Boolean).length).toBe(10);
    const flags = factsFromHeaders([
      llamaHeader({
        layers: 4, embd: 64, heads: 4, kvHeads: 4,
        extra: { "llama.attention.sliding_window": 128, "llama.attention.sliding_window_pattern": { type: GgufType.ARRAY, elementType: GgufType.BOOL, values: [true, false, true, false] } },
      }),
    ]);
    expect(flags.swaLayers).toEqual([true, false, true, false]);
    // A window without a known pattern: no layer is treated as sliding (full cache, the safe side).
    const plain = factsFromHeaders([llamaHeader({ layers: 2, embd: 64, heads: 4, kvHeads: 4, extra: { "llama.attention.sliding_window": 128 } })]);
    expect(plain.slidingWindow).toBeUndefined();
  });

  test("hybrid: layers with 0 KV heads and ssm keys are recurrent; their state is per slot", () => {
    const f = factsFromHeaders([
      llamaHeader({
        arch: "jamba", layers: 4, embd: 64, heads: 4, kvHeads: 4,
        extra: {
          "jamba.attention.head_count_kv": { type: GgufType.ARRAY, elementType: GgufType.UINT32, values: [0, 4, 0, 0] },
          "jamba.ssm.conv_kernel": 4, "jamba.ssm.inner_size": 128, "jamba.ssm.state_size": 16,
        },
      }),
    ]);
    expect(f.recurrentLayers).toEqual([true, false, true, true]);
    expect(f.recurrentStateElements).toBe(3 * 128 + 16 * 128);
    const kv = kvBytesPerLayer(f, S({ ctxSize: 1024, parallel: 2 }), 1024);
    expect(kv[0]).toBe(2 * (3 * 128 + 16 * 128) * 4);
    expect(kv[1]).toBe(1024 * 4 * (16 * 2 + 16 * 2));
  });

  test("readMemoryFacts reads a file from disk", () => {
    const p = join(dir, "m.gguf");
    writeGguf(p, { metadata: { "general.architecture": "llama", "llama.block_count": 1, "llama.embedding_length": 32, "llama.attention.head_count": 2 }, tensors: [{ name: "blk.0.w", dims: [32, 32], type: 1 }] });
    expect(readMemoryFacts(p).weights.layers).toEqual([2048]);
  });
});

describe("estimateMemory", () => {
  const tiny = factsFromHeaders([llamaHeader({ layers: 4, embd: 128, heads: 8, kvHeads: 2, vocab: 32000, ctx: 4096 })]);

  test.each([
    // label, settings, expected n_ctx, expected kv bytes
    ["ctx 1000 pads to 1024, f16 cache", S({ ctxSize: 1000 }), 1024, 4 * 1024 * 2 * (16 * 2 + 16 * 2)],
    ["ctx 0 = trained 4096", S({ ctxSize: 0 }), 4096, 4 * 4096 * 2 * (16 * 2 + 16 * 2)],
    ["q8_0 K and V", S({ ctxSize: 2048, cacheTypeK: "q8_0", cacheTypeV: "q8_0" }), 2048, 4 * 2048 * 2 * (16 * 34 / 32) * 2],
    ["f32 K, q4_0 V", S({ ctxSize: 2048, cacheTypeK: "f32", cacheTypeV: "q4_0" }), 2048, 4 * 2048 * 2 * (16 * 4 + 16 * 18 / 32)],
    ["3 slots of their own: 1000/3 -> 512 each", S({ ctxSize: 1000, parallel: 3, kvUnified: false }), 1536, 4 * 1536 * 2 * 64],
  ])("%s", (_l, s, nCtx, kv) => {
    const e = estimateMemory(tiny, s as MemorySettings, false);
    expect(e.contextSize).toBe(nCtx as number);
    expect(e.kvBytes).toBeCloseTo(kv as number, 0);
    expect(e.totalBytes).toBe(e.weightsBytes + e.kvBytes + e.computeBytes + e.outputBytes);
    expect(e.gpuBytes).toBe(0);
    expect(e.hostBytes).toBe(e.totalBytes);
  });

  test("the estimate grows with the context, and grows less with a quantized cache", () => {
    const at = (ctx: number, t = "f16") => estimateMemory(tiny, S({ ctxSize: ctx, cacheTypeK: t, cacheTypeV: t }), false).totalBytes;
    expect(at(8192)).toBeGreaterThan(at(4096));
    expect(at(8192, "q8_0") - at(4096, "q8_0")).toBeLessThan(at(8192) - at(4096));
  });

  test("sliding-window layers hold window x slots + ubatch cells, unless --swa-full", () => {
    const g = factsFromHeaders([llamaHeader({ arch: "gemma3", layers: 6, embd: 64, heads: 4, kvHeads: 4, extra: { "gemma3.attention.sliding_window": 512 } })]);
    const kv = kvBytesPerLayer(g, S({ ctxSize: 32768 }), 32768);
    const perCell = 4 * (16 * 2 + 16 * 2);
    expect(kv[0]).toBe((512 * 4 + 512) * perCell); // 2560 cells, already a multiple of 256
    expect(kv[5]).toBe(32768 * perCell); // the dense layer
    expect(kvBytesPerLayer(g, S({ ctxSize: 32768, swaFull: true }), 32768)[0]).toBe(32768 * perCell);
  });

  test("-ngl decides what goes to the GPU: the last layers first, the output layer with -ngl > layers", () => {
    const s = S({ ctxSize: 1024 });
    const all = estimateMemory(tiny, s, true);
    const two = estimateMemory(tiny, { ...s, gpuLayers: 2 }, true);
    const none = estimateMemory(tiny, { ...s, gpuLayers: 0 }, true);
    expect(all.offloadedLayers).toBe(4);
    expect(two.offloadedLayers).toBe(2);
    expect(two.gpuLayerBytes.length).toBe(2);
    expect(none.gpuBytes).toBe(0);
    expect(all.gpuBytes).toBeGreaterThan(two.gpuBytes);
    expect(all.gpuBytes - two.gpuBytes).toBe(two.gpuLayerBytes[0]! * 2 + tiny.weights.output);
    expect(all.totalBytes).toBe(none.totalBytes); // where it goes changes, not how much
    // -nkvo keeps the cache on the host
    expect(estimateMemory(tiny, { ...s, kvOffload: false }, true).gpuBytes).toBe(all.gpuBytes - all.kvBytes);
  });

  test("maxContextWithin: the largest 256-multiple whose estimate fits the budget", () => {
    const s = S();
    const budget = estimateMemory(tiny, { ...s, ctxSize: 3000 }, false).totalBytes; // 3072 cells
    const max = maxContextWithin(tiny, s, false, budget);
    expect(max).toBe(3072);
    expect(estimateMemory(tiny, { ...s, ctxSize: max + 256 }, false).totalBytes).toBeGreaterThan(budget);
    expect(maxContextWithin(tiny, s, false, 1000)).toBe(0);
    expect(maxContextWithin(tiny, s, false, Number.MAX_SAFE_INTEGER)).toBe(4096); // capped at the trained context
  });
});

describe("memorySettingsOf", () => {
  const cfg = { ctx_size: 8192, batch_size: 512, gpu_layers: -1 };
  test.each([
    ["config only", {}, { ctxSize: 8192, batchSize: 512, gpuLayers: -1, parallel: 4, kvUnified: true }],
    ["model settings win", { ctxSize: 2048, gpuLayers: 10 }, { ctxSize: 2048, gpuLayers: 10 }],
    ["extraArgs win last", { ctxSize: 2048, extraArgs: ["-c", "4096", "--cache-type-k=q8_0", "-ctv", "q4_0"] }, { ctxSize: 4096, cacheTypeK: "q8_0", cacheTypeV: "q4_0" }],
    ["-np 2: a cache per slot", { extraArgs: ["-np", "2"] }, { parallel: 2, kvUnified: false }],
    ["-np 2 -kvu: shared", { extraArgs: ["-kvu", "-np", "2"] }, { parallel: 2, kvUnified: true }],
    ["-np -1: auto", { extraArgs: ["-np", "-1"] }, { parallel: 4, kvUnified: true }],
    ["switches", { extraArgs: ["-nkvo", "--swa-full", "-fa", "off", "-ngl", "all", "-ub", "256"] }, { kvOffload: false, swaFull: true, flashAttn: "off", gpuLayers: -1, ubatchSize: 256 }],
    ["a flag without its value is ignored", { extraArgs: ["-c"] }, { ctxSize: 8192 }],
  ])("%s", (_l, settings, expected) => {
    expect(memorySettingsOf(cfg, settings, false)).toMatchObject(expected);
  });

  test("settingsKey differs when a memory setting differs", () => {
    const a = memorySettingsOf(cfg, {}, false);
    expect(settingsKey(a)).toBe(settingsKey({ ...a }));
    expect(settingsKey(a)).not.toBe(settingsKey(applyExtraArgs(a, ["-ctk", "q8_0"])));
  });
});

export type { ModelMemoryFacts };
