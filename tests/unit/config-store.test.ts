import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ConfigStore, getDefaultConfig, validateConfig, writeFileAtomic } from "../../src/config/store";

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "lap-cfg-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("writeFileAtomic", () => {
  test("replaces the file and leaves no temp files behind", () => {
    const path = join(dir, "c.json");
    writeFileAtomic(path, "one");
    writeFileAtomic(path, "two");
    expect(readFileSync(path, "utf8")).toBe("two");
    expect(readdirSync(dir)).toEqual(["c.json"]);
  });

  test("a process killed in the middle of a save leaves the old file intact", async () => {
    const path = join(dir, "llama-server-config.json");
    const store = new ConfigStore(path);
    store.update({ ...getDefaultConfig(), port: 9001 });
    const before = readFileSync(path, "utf8");

    // A child process saves a new config under a 1-block file size limit: the kernel stops the
    // write part-way (EFBIG, or SIGXFSZ where it is not ignored), the closest thing to pulling
    // the plug mid-write.
    const script = join(dir, "save.ts");
    const storeModule = resolve(import.meta.dir, "../../src/config/store.ts");
    writeFileSync(
      script,
      `import { ConfigStore, getDefaultConfig } from ${JSON.stringify(storeModule)};
       console.log("started");
       const s = new ConfigStore(${JSON.stringify(path)});
       s.update({ ...getDefaultConfig(), port: 9002, basePath: "x".repeat(20000) });
       console.log("saved");`,
    );
    const proc = Bun.spawn(["bash", "-c", `ulimit -f 1; exec ${JSON.stringify(process.execPath)} ${JSON.stringify(script)}`], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const code = await proc.exited;
    const out = await new Response(proc.stdout).text();
    const err = await new Response(proc.stderr).text();
    expect(out).toContain("started");
    expect(out).not.toContain("saved");
    expect(code === 153 /* SIGXFSZ */ || err.includes("EFBIG")).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(code).not.toBe(0);
    expect(readFileSync(path, "utf8")).toBe(before);
    expect(new ConfigStore(path).get().port).toBe(9001);
  });

  test("a failed save keeps the previous config in memory and on disk", () => {
    const path = join(dir, "sub", "c.json");
    const store = new ConfigStore(path);
    store.update({ ...getDefaultConfig(), port: 9100 });
    // Make the target a directory so the final rename fails.
    rmSync(path);
    const { mkdirSync } = require("node:fs");
    mkdirSync(join(path, "blocker"), { recursive: true });
    expect(() => store.update({ ...getDefaultConfig(), port: 9200 })).toThrow();
    expect(store.get().port).toBe(9100);
    expect(readdirSync(join(dir, "sub"))).toEqual(["c.json"]);
  });
});

describe("ConfigStore", () => {
  test("a missing file means defaults and no error", () => {
    const s = new ConfigStore(join(dir, "none.json"));
    expect(s.loadError).toBeNull();
    expect(s.get()).toEqual(getDefaultConfig());
  });

  test("a file from an older version without the newer fields gets their defaults", () => {
    const path = join(dir, "old.json");
    writeFileSync(path, JSON.stringify({ host: "127.0.0.1", port: 8200, basePath: "/m", serverPath: "/bin/ls", ctx_size: 4096, batch_size: 256, threads: 4, gpu_layers: 10 }));
    const s = new ConfigStore(path);
    expect(s.loadError).toBeNull();
    expect(s.get()).toMatchObject({ port: 8200, threads: 4, maxLoadedModels: 1, loadTimeoutSeconds: 120 });
  });

  test("a JSON array is reported as corrupt", () => {
    const path = join(dir, "arr.json");
    writeFileSync(path, "[]");
    expect(new ConfigStore(path).loadError).toContain("not a JSON object");
  });
});

describe("validateConfig", () => {
  test("returns readable errors", () => {
    expect(validateConfig({ port: 8134 })).toEqual({ valid: true, errors: [] });
    const r = validateConfig({ port: 0, threads: -7 });
    expect(r.valid).toBe(false);
    expect(r.errors).toContain("Port must be between 1 and 65535");
    expect(r.errors.some((e) => e.includes("threads must be -1"))).toBe(true);
  });
});
