import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspectModelFile, scanForModels, type FoundModel } from "../../src/models/discover";
import { familyFromName, parseSplitName, quantizationFromName, stemOf } from "../../src/models/names";
import { writeGguf, writeModel } from "../fixtures/gguf-writer";

const GB = 1024 ** 3;
let root: string;

/**
 * A folder like a real model collection, with every hazard the scan must survive:
 *   llama-3-8b-instruct-Q4_K_M.gguf        plain model (big, sparse)
 *   qwen/Qwen2.5-VL-7B-Instruct-Q8_0.gguf   model with two projectors beside it
 *   qwen/mmproj-Qwen2.5-VL-7B-Q8_0.gguf     (clip)
 *   qwen/mmproj-Qwen2.5-VL-7B-F16.gguf      (clip) <- preferred
 *   big/DeepSeek-V3-Q2_K-0000{1,2,3}-of-00003.gguf  one split model
 *   broken-split/foo-00001-of-00002.gguf    incomplete split -> skipped
 *   orphan/mmproj-lonely.gguf               projector without a model -> skipped
 *   junk.gguf                               text, not GGUF -> skipped
 *   notes.txt, model.gguf.tmp               do not match
 *   old/gpt2-medium-q4_0.bin                not GGUF: skipped even with includePatterns *.bin
 *   loop -> .                               symlink loop
 *   link-to-qwen -> qwen                    same folder twice
 *   dangling.gguf -> nowhere                broken symlink -> skipped
 *   a.gguf <-> b.gguf                       symlinks to each other (ELOOP) -> skipped
 *   fifo.gguf                               FIFO -> skipped, never opened
 *   .hidden/secret.gguf                     hidden folders are not scanned
 *   deep/1/2/3/Phi-3-mini-4k-F16.gguf       nested model
 */
beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), "discover-")));
  writeModel(join(root, "llama-3-8b-instruct-Q4_K_M.gguf"), {
    arch: "llama", name: "Llama 3 8B Instruct", description: "Llama 3 Base model", version: "3.0",
    fileType: 15, contextLength: 8192, vocab: 2000, size: 5 * GB,
  });
  mkdirSync(join(root, "qwen"));
  writeModel(join(root, "qwen/Qwen2.5-VL-7B-Instruct-Q8_0.gguf"), { arch: "qwen2vl", name: "Qwen2.5 VL 7B", fileType: 7, contextLength: 128000, size: 8 * GB });
  writeModel(join(root, "qwen/mmproj-Qwen2.5-VL-7B-Q8_0.gguf"), { arch: "clip", name: "proj", fileType: 7 });
  writeModel(join(root, "qwen/mmproj-Qwen2.5-VL-7B-F16.gguf"), { arch: "clip", name: "proj", fileType: 1 });
  mkdirSync(join(root, "big"));
  for (const part of [1, 2, 3]) {
    const file = join(root, `big/DeepSeek-V3-Q2_K-0000${part}-of-00003.gguf`);
    // Only the first shard carries the model metadata; later ones hold split.* keys (as gguf-split writes).
    if (part === 1) writeModel(file, { arch: "deepseek2", name: "DeepSeek V3", fileType: 10, contextLength: 163840, split: { no: 0, count: 3 }, size: 40 * GB });
    else writeGguf(file, { metadata: { "split.no": part - 1, "split.count": 3 }, size: 30 * GB });
  }
  mkdirSync(join(root, "broken-split"));
  writeModel(join(root, "broken-split/foo-00001-of-00002.gguf"), { arch: "llama", split: { no: 0, count: 2 } });
  mkdirSync(join(root, "orphan"));
  writeModel(join(root, "orphan/mmproj-lonely.gguf"), { arch: "clip" });
  writeFileSync(join(root, "junk.gguf"), "not a model, just some text that happens to be named .gguf");
  writeFileSync(join(root, "notes.txt"), "hello");
  writeModel(join(root, "model.gguf.tmp"), { arch: "llama" });
  mkdirSync(join(root, "old"));
  writeFileSync(join(root, "old/gpt2-medium-q4_0.bin"), Buffer.alloc(4096, 7));
  symlinkSync(".", join(root, "loop"));
  symlinkSync("qwen", join(root, "link-to-qwen"));
  symlinkSync(join(root, "does-not-exist.gguf"), join(root, "dangling.gguf"));
  symlinkSync("b.gguf", join(root, "a.gguf"));
  symlinkSync("a.gguf", join(root, "b.gguf"));
  const fifo = Bun.spawnSync(["mkfifo", join(root, "fifo.gguf")]);
  if (fifo.exitCode !== 0) throw new Error("mkfifo failed");
  mkdirSync(join(root, ".hidden"));
  writeModel(join(root, ".hidden/secret.gguf"), { arch: "llama" });
  mkdirSync(join(root, "deep/1/2/3"), { recursive: true });
  writeModel(join(root, "deep/1/2/3/Phi-3-mini-4k-F16.gguf"), { arch: "phi3", name: "Phi 3 Mini", fileType: 1, contextLength: 4096 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const byName = (models: FoundModel[], name: string) => {
  const m = models.find((x) => x.name === name);
  if (!m) throw new Error(`${name} not found in ${models.map((x) => x.name).join(", ")}`);
  return m;
};

describe("scanForModels on a mixed folder", () => {
  test("finds exactly the models, with metadata from their headers", async () => {
    const r = await scanForModels({ roots: [root] });
    expect(r.models.map((m) => m.name).sort()).toEqual([
      "DeepSeek-V3-Q2_K",
      "Phi-3-mini-4k-F16",
      "Qwen2.5-VL-7B-Instruct-Q8_0",
      "llama-3-8b-instruct-Q4_K_M",
    ]);
    expect(byName(r.models, "llama-3-8b-instruct-Q4_K_M")).toEqual({
      name: "llama-3-8b-instruct-Q4_K_M",
      description: "Llama 3 Base model",
      version: "3.0",
      path: join(root, "llama-3-8b-instruct-Q4_K_M.gguf"),
      size: 5 * GB,
      format: "gguf",
      family: "llama",
      quantization: "Q4_K_M",
      contextSize: 8192,
      shards: 1,
    });
    expect(byName(r.models, "Phi-3-mini-4k-F16")).toMatchObject({ family: "phi3", quantization: "F16", contextSize: 4096, description: "Phi 3 Mini" });
  });

  test("a split model is one model: first shard's path, total size of all shards", async () => {
    const r = await scanForModels({ roots: [root] });
    const ds = byName(r.models, "DeepSeek-V3-Q2_K");
    expect(ds.path).toBe(join(root, "big/DeepSeek-V3-Q2_K-00001-of-00003.gguf"));
    expect(ds.size).toBe(40 * GB + 30 * GB + 30 * GB);
    expect(ds.shards).toBe(3);
    expect(ds).toMatchObject({ family: "deepseek2", quantization: "Q2_K", contextSize: 163840 });
    expect(r.skipped).toContainEqual({
      path: join(root, "broken-split/foo-00001-of-00002.gguf"),
      reason: "incomplete split model: missing part 2 of 2",
    });
  });

  test("projectors are attached to the model in their folder (F16 preferred), not listed as models", async () => {
    const r = await scanForModels({ roots: [root] });
    const qwen = byName(r.models, "Qwen2.5-VL-7B-Instruct-Q8_0");
    expect(qwen.mmprojPath).toBe(join(root, "qwen/mmproj-Qwen2.5-VL-7B-F16.gguf"));
    expect(qwen.family).toBe("qwen2vl");
    expect(r.models.some((m) => m.name.startsWith("mmproj"))).toBe(false);
    expect(byName(r.models, "llama-3-8b-instruct-Q4_K_M").mmprojPath).toBeUndefined();
    expect(r.skipped).toContainEqual({ path: join(root, "orphan/mmproj-lonely.gguf"), reason: "multimodal projector without a model in its folder" });
  });

  test("junk, broken links, link loops and FIFOs are reported in skipped, and the scan finishes", async () => {
    const r = await scanForModels({ roots: [root] });
    const reason = (p: string) => r.skipped.find((s) => s.path === join(root, p))?.reason;
    expect(reason("junk.gguf")).toBe("not a GGUF file (bad magic)");
    expect(reason("dangling.gguf")).toBe("broken symbolic link: no such file or directory");
    expect(reason("a.gguf")).toBe("broken symbolic link: too many levels of symbolic links");
    expect(reason("fifo.gguf")).toBe("a FIFO, not a model file");
    expect(reason("loop")).toBe(`already scanned as ${root} (symlink loop or duplicate)`);
    expect(reason("link-to-qwen")).toBe(`already scanned as ${join(root, "qwen")} (symlink loop or duplicate)`);
    expect(reason("qwen")).toBeUndefined();
    // The same folder reached through a symlink is not scanned twice: no duplicate Qwen.
    expect(r.models.filter((m) => m.name.startsWith("Qwen")).length).toBe(1);
    // Files that do not match, hidden folders: silently ignored.
    for (const p of ["notes.txt", "model.gguf.tmp", ".hidden/secret.gguf", "old/gpt2-medium-q4_0.bin"]) {
      expect(r.skipped.some((s) => s.path === join(root, p))).toBe(false);
      expect(r.models.some((m) => m.path === join(root, p))).toBe(false);
    }
  });

  test("symlinked files (Hugging Face cache layout) are listed under the link's name, once", async () => {
    const hf = realpathSync(mkdtempSync(join(tmpdir(), "discover-hf-")));
    try {
      // snapshots/<rev>/name.gguf -> ../../blobs/<sha>: the blob has no extension.
      mkdirSync(join(hf, "blobs"));
      mkdirSync(join(hf, "snapshots/abc123"), { recursive: true });
      writeModel(join(hf, "blobs/9f86d081884c7d65"), { arch: "gemma3", name: "Gemma 3 1B", fileType: 15, contextLength: 32768, size: 806_058_240 });
      symlinkSync("../../blobs/9f86d081884c7d65", join(hf, "snapshots/abc123/gemma-3-1b-it-Q4_K_M.gguf"));
      symlinkSync("../../blobs/9f86d081884c7d65", join(hf, "snapshots/abc123/same-blob-again.gguf"));
      const r = await scanForModels({ roots: [hf] });
      expect(r.models).toEqual([
        {
          name: "gemma-3-1b-it-Q4_K_M",
          description: "Gemma 3 1B",
          path: join(hf, "snapshots/abc123/gemma-3-1b-it-Q4_K_M.gguf"),
          size: 806_058_240,
          format: "gguf",
          family: "gemma3",
          quantization: "Q4_K_M",
          contextSize: 32768,
          shards: 1,
        },
      ]);
    } finally {
      rmSync(hf, { recursive: true, force: true });
    }
  });

  test("recursive: false scans only the folder itself", async () => {
    const r = await scanForModels({ roots: [root], recursive: false });
    expect(r.models.map((m) => m.name)).toEqual(["llama-3-8b-instruct-Q4_K_M"]);
  });

  test("includePatterns and excludePatterns (Bun.Glob, name or path below the root)", async () => {
    // Finding 4 of #11: a file that does not start with the GGUF magic is never a model, whatever
    // its name; asking for *.bin lists it in `skipped` with the reason.
    const withBin = await scanForModels({ roots: [root], includePatterns: ["*.gguf", "*.bin"] });
    expect(withBin.models.some((m) => m.name === "gpt2-medium-q4_0")).toBe(false);
    expect(withBin.skipped).toContainEqual({ path: join(root, "old/gpt2-medium-q4_0.bin"), reason: "not a GGUF file (bad magic)" });
    const noQwen = await scanForModels({ roots: [root], excludePatterns: ["*Qwen*", "big/**"] });
    expect(noQwen.models.map((m) => m.name).sort()).toEqual(["Phi-3-mini-4k-F16", "llama-3-8b-instruct-Q4_K_M"]);
    const onlyDeep = await scanForModels({ roots: [root], includePatterns: ["deep/**/*.gguf"] });
    expect(onlyDeep.models.map((m) => m.name)).toEqual(["Phi-3-mini-4k-F16"]);
  });

  test("maxDepth limits how far down the walk goes and says so", async () => {
    const r = await scanForModels({ roots: [root], maxDepth: 2 });
    expect(r.models.some((m) => m.name === "Phi-3-mini-4k-F16")).toBe(false);
    // root/deep is level 1, deep/1 level 2: deep/1/2 would be level 3.
    expect(r.skipped).toContainEqual({ path: join(root, "deep/1/2"), reason: "deeper than 2 levels" });
  });

  // The unprivileged child needs to reach the bun binary and this checkout; a CI clone under a
  // private folder does not allow that, and then this case cannot be shown (said, not hidden).
  const asRootHere = process.getuid?.() === 0;
  const nobodyCanRun =
    !asRootHere ||
    Bun.spawnSync([process.execPath, "-e", `require(${JSON.stringify(join(import.meta.dir, "../../src/models/discover.ts"))})`], {
      uid: 65534,
      gid: 65534,
      env: { PATH: process.env.PATH ?? "", HOME: tmpdir(), BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" },
      stderr: "pipe",
    }).exitCode === 0;
  if (!nobodyCanRun) console.warn("skipping the chmod 000 discovery test: user nobody cannot run bun from this checkout");
  test.skipIf(!nobodyCanRun)("an unreadable folder (chmod 000) is skipped and reported, as an unprivileged user", async () => {
    // chmod does not stop root, so the scan runs in a child process as nobody (uid 65534).
    const dir = mkdtempSync(join(tmpdir(), "discover-perm-"));
    try {
      chmodSync(dir, 0o755);
      mkdirSync(join(dir, "locked"));
      writeModel(join(dir, "locked/hidden-Q4_0.gguf"), { arch: "llama" });
      writeModel(join(dir, "open-Q8_0.gguf"), { arch: "llama", fileType: 7 });
      writeModel(join(dir, "private-Q8_0.gguf"), { arch: "llama", fileType: 7 });
      chmodSync(join(dir, "locked"), 0o000);
      chmodSync(join(dir, "private-Q8_0.gguf"), 0o000);
      const script = `import { scanForModels } from ${JSON.stringify(join(import.meta.dir, "../../src/models/discover.ts"))};
        const r = await scanForModels({ roots: [${JSON.stringify(dir)}] });
        console.log(JSON.stringify({ models: r.models.map((m) => m.name), skipped: r.skipped }));`;
      const asRoot = process.getuid?.() === 0;
      const proc = Bun.spawnSync([process.execPath, "-e", script], {
        ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
        env: { PATH: process.env.PATH ?? "", HOME: dir, BUN_INSTALL_CACHE_DIR: join(dir, ".bun-cache"), BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" },
        stderr: "pipe",
      });
      if (proc.exitCode !== 0) throw new Error(`child scan failed: ${proc.stderr.toString()}`);
      const out = JSON.parse(proc.stdout.toString());
      expect(out.models).toEqual(["open-Q8_0"]);
      expect(out.skipped).toContainEqual({ path: join(dir, "locked"), reason: "cannot read folder: permission denied" });
      expect(out.skipped).toContainEqual({ path: join(dir, "private-Q8_0.gguf"), reason: "permission denied" });
    } finally {
      chmodSync(join(dir, "locked"), 0o755);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a folder that is gone by the time it is read is reported, not thrown", async () => {
    const gone = join(root, "vanished-folder");
    const r = await scanForModels({ roots: [gone] });
    expect(r.models).toEqual([]);
    expect(r.skipped).toEqual([{ path: gone, reason: "no such file or directory" }]);
  });

  test("an aborted scan stops with the abort reason", async () => {
    const c = new AbortController();
    c.abort();
    await expect(scanForModels({ roots: [root], signal: c.signal })).rejects.toThrow();
  });
});

describe("inspectModelFile (registration)", () => {
  test("first shard: total size; a later shard is refused with the file to use", async () => {
    const m = await inspectModelFile(join(root, "big/DeepSeek-V3-Q2_K-00001-of-00003.gguf"));
    expect(m.size).toBe(100 * GB);
    await expect(inspectModelFile(join(root, "big/DeepSeek-V3-Q2_K-00002-of-00003.gguf"))).rejects.toThrow(
      "is part 2 of a split model; register DeepSeek-V3-Q2_K-00001-of-00003.gguf",
    );
    await expect(inspectModelFile(join(root, "broken-split/foo-00001-of-00002.gguf"))).rejects.toThrow("split model is incomplete");
  });

  test("projector attached, projector and junk refused", async () => {
    expect((await inspectModelFile(join(root, "qwen/Qwen2.5-VL-7B-Instruct-Q8_0.gguf"))).mmprojPath).toBe(join(root, "qwen/mmproj-Qwen2.5-VL-7B-F16.gguf"));
    await expect(inspectModelFile(join(root, "qwen/mmproj-Qwen2.5-VL-7B-F16.gguf"))).rejects.toThrow("multimodal projector");
    await expect(inspectModelFile(join(root, "junk.gguf"))).rejects.toThrow("not a GGUF file");
    await expect(inspectModelFile(join(root, "fifo.gguf"))).rejects.toThrow("a FIFO");
  });
});

describe("names", () => {
  test("split names, stems, families and quantization labels from file names", () => {
    expect(parseSplitName("Qwen3-235B-Q4_K_M-00002-of-00005.gguf")).toEqual({ stem: "Qwen3-235B-Q4_K_M", part: 2, count: 5 });
    expect(parseSplitName("model-00006-of-00005.gguf")).toBeUndefined();
    expect(stemOf("x-00001-of-00002.gguf")).toBe("x");
    expect(familyFromName("Mixtral-8x7B.gguf")).toBe("mixtral");
    expect(familyFromName("Meta-Llama-3.1-8B.bin")).toBe("llama");
    expect(familyFromName("random.bin")).toBeUndefined();
    expect(quantizationFromName("Llama-3-8B-Instruct.IQ3_XXS.gguf")).toBe("IQ3_XXS");
    expect(quantizationFromName("phi-2-fp16.gguf")).toBe("F16");
    expect(quantizationFromName("model-q4_k_m-00001-of-00002.gguf")).toBe("Q4_K_M");
    expect(quantizationFromName("model.gguf")).toBeUndefined();
  });
});
