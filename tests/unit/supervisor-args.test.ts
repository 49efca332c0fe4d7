import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { getDefaultConfig } from "../../src/config/store";
import { ALL_GPU_LAYERS, bindHost, buildServerArgs, connectHost, LaunchArgsError } from "../../src/supervisor/args";

const HELP = readFileSync(join(import.meta.dir, "../fixtures/llama-server/llama-server-help.txt"), "utf8");
const cfg = { ...getDefaultConfig(), ctx_size: 4096, batch_size: 256, threads: 6, gpu_layers: 20 };
const model = { id: "llama-3-8b", path: "/models/llama.gguf", settings: {} };

/** Flags llama-server documents (first column of each help entry, comma-separated aliases). */
function documentedFlags(): Set<string> {
  const flags = new Set<string>();
  for (const line of HELP.split("\n")) {
    if (!line.startsWith("-")) continue;
    // The flag column ends where the description column (40) starts, or at the end of a long line.
    const column = line.length > 40 && line[39] === " " ? line.slice(0, 40) : line;
    for (const token of column.split(/[\s,]+/)) if (/^--?[a-zA-Z]/.test(token)) flags.add(token);
  }
  return flags;
}

describe("buildServerArgs", () => {
  test("global config becomes the documented llama-server flags", () => {
    const args = buildServerArgs(cfg, model, "127.0.0.1", 8135);
    expect(args).toEqual([
      "-m", "/models/llama.gguf", "--host", "127.0.0.1", "--port", "8135", "-c", "4096", "-b", "256",
      "-t", "6", "-ngl", "20", "--metrics", "--alias", "llama-3-8b",
    ]);
  });

  test("every flag we pass exists in llama-server --help", () => {
    const known = documentedFlags();
    expect(known.size).toBeGreaterThan(100);
    const args = buildServerArgs(cfg, { ...model, mmprojPath: "/models/mmproj.gguf" }, "127.0.0.1", 8135);
    for (const a of args.filter((a) => a.startsWith("-"))) expect(known.has(a)).toBe(true);
  });

  test("per-model settings override the global config", () => {
    const args = buildServerArgs(cfg, { ...model, settings: { ctxSize: 1024, batchSize: 64, threads: 2, gpuLayers: 0 } }, "h", 1);
    expect(args.join(" ")).toContain("-c 1024 -b 64 -t 2 -ngl 0");
  });

  test("threads -1 lets llama-server decide (flag omitted); gpu_layers -1 offloads all layers", () => {
    const args = buildServerArgs({ ...cfg, threads: -1, gpu_layers: -1 }, model, "h", 1);
    expect(args).not.toContain("-t");
    expect(args[args.indexOf("-ngl") + 1]).toBe(ALL_GPU_LAYERS);
  });

  test("extra args are appended verbatim, one argv entry each (no shell splitting)", () => {
    const args = buildServerArgs(cfg, { ...model, settings: { extraArgs: ["--jinja", "--lora", "/a b/adapter.gguf"] } }, "h", 1);
    expect(args.slice(-3)).toEqual(["--jinja", "--lora", "/a b/adapter.gguf"]);
  });

  test("extra args may not take over the flags the supervisor owns", () => {
    for (const bad of [["--port", "9"], ["--host=0.0.0.0"], ["-m", "/x"], ["--alias", "x"]]) {
      expect(() => buildServerArgs(cfg, { ...model, settings: { extraArgs: bad } }, "h", 1)).toThrow(LaunchArgsError);
    }
  });

  test("multimodal projector is passed with --mmproj", () => {
    const args = buildServerArgs(cfg, { ...model, mmprojPath: "/m/proj.gguf" }, "h", 1);
    expect(args[args.indexOf("--mmproj") + 1]).toBe("/m/proj.gguf");
  });
});

describe("hosts", () => {
  test("localhost is pinned to 127.0.0.1 for binding; wildcards are reached through loopback", () => {
    expect(bindHost("localhost")).toBe("127.0.0.1");
    // Children are only ever reached through the proxy: never bound beyond loopback.
    expect(bindHost("10.0.0.5")).toBe("127.0.0.1");
    expect(bindHost("0.0.0.0")).toBe("127.0.0.1");
    expect(bindHost("::1")).toBe("::1");
    expect(bindHost("127.0.0.2")).toBe("127.0.0.2");
    expect(connectHost("0.0.0.0")).toBe("127.0.0.1");
    expect(connectHost("::")).toBe("[::1]");
    expect(connectHost("::1")).toBe("[::1]");
    expect(connectHost("192.168.1.2")).toBe("192.168.1.2");
  });
});
