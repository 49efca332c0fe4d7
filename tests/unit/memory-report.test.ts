import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MemoryReportParser, VerbosityFilter, isHostBuffer } from "../../src/memory/report";

// Captured from the real llama-server (CPU build of shared/tools/build-llama-server.sh), same tiny
// model and the same two requests, at -lv 3 (its default) and at -lv 4 (what we run it at).
const LV3 = readFileSync(join(import.meta.dir, "../fixtures/llama-server-lv3.log"), "utf8").trimEnd().split("\n");
const LV4 = readFileSync(join(import.meta.dir, "../fixtures/llama-server-lv4.log"), "utf8").trimEnd().split("\n");
const MiB = 1024 * 1024;

describe("MemoryReportParser", () => {
  test("the real -lv 4 output: buffer sizes while loading, the breakdown table at exit", () => {
    const p = new MemoryReportParser();
    const upToReady = LV4.slice(0, LV4.findIndex((l) => l.includes("listening on")) + 1);
    for (const l of upToReady) p.line(l);
    expect(p.hasTable()).toBe(false);
    // 15.94 MiB of weights, 0.50 MiB of KV cache, 2.01 MiB of compute buffer, all on the CPU.
    expect(p.devices()).toEqual([
      { device: "CPU_Mapped", kind: "host", modelBytes: Math.round(15.94 * MiB), contextBytes: 0, computeBytes: 0 },
      { device: "CPU", kind: "host", modelBytes: 0, contextBytes: Math.round(0.5 * MiB), computeBytes: Math.round(2.01 * MiB) },
    ]);
    for (const l of LV4.slice(upToReady.length)) p.line(l);
    expect(p.hasTable()).toBe(true);
    expect(p.devices()).toEqual([{ device: "Host", kind: "host", modelBytes: 15 * MiB, contextBytes: 0, computeBytes: 2 * MiB }]);
  });

  test("GPU rows of the table carry the device's total and free memory", () => {
    const p = new MemoryReportParser();
    p.line("0.01.000.000 I common_memory_breakdown_print: | memory breakdown [MiB] | total   free    self   model   context   compute    unaccounted |");
    p.line("0.01.000.000 I common_memory_breakdown_print: |   - CUDA0 (H200)       | 143771 = 120000 + (21000 = 16000 +  4000 + 1000) +  2771 |");
    p.line("0.01.000.000 I common_memory_breakdown_print: |   - Host               |                      350 =   300 +     0 +   50                |");
    expect(p.devices()).toEqual([
      { device: "CUDA0", kind: "gpu", totalBytes: 143771 * MiB, freeBytes: 120000 * MiB, modelBytes: 16000 * MiB, contextBytes: 4000 * MiB, computeBytes: 1000 * MiB },
      { device: "Host", kind: "host", modelBytes: 300 * MiB, contextBytes: 0, computeBytes: 50 * MiB },
    ]);
    expect(p.totalBytes()).toBe(21350 * MiB);
  });

  test("--fit's projection is read too", () => {
    const p = new MemoryReportParser();
    expect(p.line("0.00.500.000 I common_params_fit_impl: projected to use 21000 MiB of device memory vs. 143000 MiB of free device memory")).toBe(true);
    expect(p.projectedBytes).toBe(21000 * MiB);
  });

  test.each([
    ["CPU", true], ["CPU_Mapped", true], ["CPU_REPACK", true], ["CUDA_Host", true], ["Host", true],
    ["CUDA0", false], ["CUDA1", false], ["ROCm0", false], ["Vulkan0", false], ["Metal", false],
  ])("%s is host memory: %p", (name, host) => {
    expect(isHostBuffer(name)).toBe(host);
  });
});

describe("VerbosityFilter", () => {
  test("at -lv 4 it keeps what -lv 3 shows, plus the memory and load-stage lines, and drops the rest", () => {
    const f = new VerbosityFilter();
    const kept = LV4.filter((l) => f.keep(l));
    // Compare the messages without their numbers (timings differ between the two runs).
    const text = (l: string) => l.slice(13).replace(/[\d.]+/g, "#").replace(/\s+/g, " ");
    // Everything llama-server prints by default still shows.
    const keptText = new Set(kept.map(text));
    const missing = LV3.map(text).filter((t) => !keptText.has(t) && !/verbosity = 3/.test(t));
    expect(missing).toEqual([]);
    // A readable log: well under a fifth of the -lv 4 lines.
    expect(kept.length).toBeLessThan(LV4.length / 5);
    expect(kept.some((l) => l.includes("model buffer size"))).toBe(true);
    expect(kept.some((l) => l.includes("llama_model_loader: - kv"))).toBe(false);
    expect(kept.some((l) => l.includes("skipping, slot is empty"))).toBe(false);
    expect(kept.some((l) => l.includes("common_memory_breakdown_print"))).toBe(false);
  });

  test("warnings and errors always pass; continuation lines follow their first line", () => {
    const f = new VerbosityFilter();
    expect(f.keep("0.00.100.000 W llama_context: n_ctx_seq (1024) > n_ctx_train (512)")).toBe(true);
    expect(f.keep("0.00.100.000 E llama_model_load: error loading model")).toBe(true);
    expect(f.keep("0.00.100.000 I print_info: n_layer = 2")).toBe(false);
    expect(f.keep("    continuation of print_info")).toBe(false);
    expect(f.keep("0.00.100.000 I srv  llama_server: model loaded")).toBe(true);
    expect(f.keep("continuation of a kept line")).toBe(true);
  });
});
