import { describe, expect, test } from "bun:test";
import {
  chooseFreeSlot,
  chooseRestore,
  commonPrefixLength,
  evictionsForBudget,
  restoreVerdict,
  slotsToSave,
  supersededBy,
  type SlotState,
} from "../../src/kvcache/decide";
import { settingsFingerprint, tokensHash, type CacheSettings } from "../../src/kvcache/fingerprint";
import { encodeSlotFileHeader, parseSlotFileHeader, SlotFileError } from "../../src/kvcache/slot-file";

const seq = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe("KV cache decisions", () => {
  test.each([
    [[1, 2, 3], [1, 2, 3], 3],
    [[1, 2, 3], [1, 2, 4], 2],
    [[1, 2, 3], [1, 2], 2],
    [[], [1], 0],
    [[9], [1], 0],
  ])("commonPrefixLength(%p, %p) = %p", (a, b, n) => {
    expect(commonPrefixLength(a, b)).toBe(n);
  });

  test("only idle slots holding at least the minimum are saved", () => {
    const slots: SlotState[] = [
      { id: 0, n_ctx: 4096, is_processing: false, n_prompt_tokens: 2000 },
      { id: 1, n_ctx: 4096, is_processing: true, n_prompt_tokens: 3000 },
      { id: 2, n_ctx: 4096, is_processing: false, n_prompt_tokens: 1023 },
      { id: 3, n_ctx: 4096, is_processing: false },
      { id: 4, n_ctx: 4096, is_processing: false, n_prompt_tokens: 1024 },
    ];
    expect(slotsToSave(slots, 1024).map((s) => s.id)).toEqual([0, 4]);
  });

  test("the cache with the longest shared prefix wins, if that prefix reaches the minimum", () => {
    const prompt = [...seq(1, 100), 500, 501];
    const a = { id: "a", tokens: seq(1, 40) };
    const b = { id: "b", tokens: [...seq(1, 90), 7, 7, 7] }; // goes on past the shared part: still 90 useful
    const c = { id: "c", tokens: seq(2, 200) };
    expect(chooseRestore([a, b, c], prompt, 10)).toEqual({ id: "b", reuse: 90 });
    expect(chooseRestore([a, c], prompt, 50)).toBeNull();
    expect(chooseRestore([], prompt, 1)).toBeNull();
  });

  test("a free slot is idle, not reserved, large enough, and preferably empty", () => {
    const slots: SlotState[] = [
      { id: 0, n_ctx: 4096, is_processing: true },
      { id: 1, n_ctx: 4096, is_processing: false, n_prompt_tokens: 300 },
      { id: 2, n_ctx: 4096, is_processing: false },
      { id: 3, n_ctx: 4096, is_processing: false },
    ];
    expect(chooseFreeSlot(slots, new Set(), 1000)).toBe(2);
    expect(chooseFreeSlot(slots, new Set([2]), 1000)).toBe(3);
    expect(chooseFreeSlot(slots, new Set([2, 3]), 1000)).toBe(1);
    expect(chooseFreeSlot(slots, new Set([1, 2, 3]), 1000)).toBeNull();
    expect(chooseFreeSlot([{ id: 0, n_ctx: 512, is_processing: false }], new Set(), 1000)).toBeNull();
  });

  test.each([
    [2000, { cacheN: 1999, promptN: 30 }, "helped"],
    [2000, { cacheN: 1000, promptN: 1030 }, "helped"],
    [2000, { cacheN: 0, promptN: 2030 }, "not-helped"],
    [2000, { cacheN: 999, promptN: 1031 }, "not-helped"],
    [2000, { promptN: 30 }, "unknown"],
    [0, { cacheN: 0 }, "unknown"],
  ] as const)("restore of a %p-token prefix with timings %p: %p", (expected, timings, verdict) => {
    expect(restoreVerdict(expected, timings)).toBe(verdict);
  });

  test("eviction removes least recently used files until the rest fit", () => {
    const e = [
      { id: "new", bytes: 400, lastUsedAt: 30 },
      { id: "old", bytes: 300, lastUsedAt: 10 },
      { id: "mid", bytes: 300, lastUsedAt: 20 },
    ];
    expect(evictionsForBudget(e, 1000)).toEqual([]);
    expect(evictionsForBudget(e, 999)).toEqual(["old"]);
    expect(evictionsForBudget(e, 400)).toEqual(["old", "mid"]);
    expect(evictionsForBudget(e, 0)).toEqual(["old", "mid", "new"]);
  });

  test("a save supersedes earlier saves of the same conversation (up to a short re-tokenized tail), not other conversations", () => {
    const now = seq(1, 500);
    const turn1 = [...seq(1, 300), 9001, 9002, 9003]; // its generated tail re-tokenized differently
    const other = [1, 2, ...seq(700, 300)];
    const branched = [...seq(1, 200), ...seq(800, 150)]; // shares 200 of 350: another branch
    const longer = seq(1, 600);
    expect(supersededBy(now, [{ id: "turn1", tokens: turn1 }, { id: "same", tokens: now }, { id: "other", tokens: other }, { id: "branched", tokens: branched }, { id: "longer", tokens: longer }])).toEqual(["turn1", "same"]);
  });

  test("the settings fingerprint changes with anything that changes what a cache holds", () => {
    const base: CacheSettings = { modelPath: "/m/a.gguf", modelSize: 10, modelMtimeMs: 1, mmprojPath: null, ctxSize: 8192, extraArgs: [], serverPath: "/bin/ls", serverSize: 5, serverMtimeMs: 2 };
    const fp = settingsFingerprint(base);
    expect(settingsFingerprint({ ...base })).toBe(fp);
    for (const change of [{ modelSize: 11 }, { modelMtimeMs: 5000 }, { ctxSize: 4096 }, { extraArgs: ["-ctk", "q8_0"] }, { serverMtimeMs: 9000 }, { modelPath: "/m/b.gguf" }]) {
      expect(settingsFingerprint({ ...base, ...change })).not.toBe(fp);
    }
    expect(tokensHash(Int32Array.from([1, 2, 3]))).toBe(tokensHash([1, 2, 3]));
    expect(tokensHash([1, 2, 3])).not.toBe(tokensHash([1, 2, 4]));
  });
});

describe("slot file header (llama_state_seq_save_file layout)", () => {
  test("the packed server_tokens form round-trips", () => {
    const bytes = encodeSlotFileHeader([5, 6, 7]);
    const withState = new Uint8Array(bytes.length + 100);
    withState.set(bytes);
    expect([...parseSlotFileHeader(withState).tokens]).toEqual([5, 6, 7]);
  });

  test("the plain token list of older servers is read as is", () => {
    const buf = new Uint8Array(12 + 8);
    const v = new DataView(buf.buffer);
    v.setUint32(0, 0x67677371, true);
    v.setUint32(4, 3, true);
    v.setUint32(8, 2, true);
    v.setInt32(12, 11, true);
    v.setInt32(16, 12, true);
    expect([...parseSlotFileHeader(buf).tokens]).toEqual([11, 12]);
  });

  test.each([
    ["too short", new Uint8Array(4)],
    ["wrong magic", (() => { const b = encodeSlotFileHeader([1]); b[0] = 0; return b; })()],
    ["wrong version", (() => { const b = encodeSlotFileHeader([1]); new DataView(b.buffer).setUint32(4, 2, true); return b; })()],
    ["count beyond the file", (() => { const b = encodeSlotFileHeader([1]); new DataView(b.buffer).setUint32(8, 1000, true); return b; })()],
    ["media chunks", (() => { const b = encodeSlotFileHeader([1]); new DataView(b.buffer).setInt32(b.length - 4, 1, true); return b; })()],
  ])("a damaged header is refused: %s", (_what, buf) => {
    expect(() => parseSlotFileHeader(buf)).toThrow(SlotFileError);
  });
});
