import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getDefaultConfig } from "../../src/config/store";
import { LogBuffer } from "../../src/logs/buffer";
import { Logger } from "../../src/logs/logger";
import { KvCacheService } from "../../src/kvcache/service";
import { encodeSlotFileHeader } from "../../src/kvcache/slot-file";
import { KvCacheStore, newFileName } from "../../src/kvcache/store";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const root = () => {
  const d = mkdtempSync(join(tmpdir(), "lap-kvstore-"));
  dirs.push(d);
  return join(d, "kv-cache");
};
const log = new Logger(new LogBuffer(100), "error", "test", true);

/** A slot file of `bytes` bytes holding `tokens`, recorded in the store as saved at `at`. */
function addFile(store: KvCacheStore, modelId: string, tokens: number[], bytes: number, at: number) {
  const { id, file } = newFileName(at);
  const buf = new Uint8Array(bytes);
  buf.set(encodeSlotFileHeader(tokens));
  writeFileSync(join(store.dirOf(modelId), file), buf);
  store.add({ id, modelId, file, fingerprint: "fp", settings: {}, tokens: tokens.length, tokensHash: "h", bytes, createdAt: at, lastUsedAt: at, hits: 0 });
  return id;
}

describe("KV cache store", () => {
  test("file names are generated, never taken from input, and model folders stay inside the root", () => {
    const store = new KvCacheStore(root(), log);
    expect(newFileName().file).toMatch(/^[a-z0-9]+-[a-f0-9]{12}\.bin$/);
    expect(() => store.dirOf("../etc")).toThrow();
    expect(() => store.dirOf("a/b")).toThrow();
    expect(store.dirOf("alpha")).toBe(join(store.root, "alpha"));
  });

  test("the index survives a restart; entries whose file vanished and files nobody recorded are dropped", () => {
    const r = root();
    const a = new KvCacheStore(r, log);
    const keep = addFile(a, "alpha", [1, 2, 3], 4096, 1);
    const gone = addFile(a, "alpha", [1, 2], 4096, 2);
    rmSync(join(a.dirOf("alpha"), a.get(gone)!.file));
    writeFileSync(join(a.dirOf("alpha"), "stray-save.bin"), "partial");
    const b = new KvCacheStore(r, log);
    expect(b.list().map((e) => e.id)).toEqual([keep]);
    expect(readdirSync(b.dirOf("alpha"))).toEqual([b.get(keep)!.file]);
    expect([...b.tokensOf(b.get(keep)!)]).toEqual([1, 2, 3]);
  });

  test("a corrupt index starts an empty cache instead of failing", () => {
    const r = root();
    const a = new KvCacheStore(r, log);
    addFile(a, "alpha", [1], 1000, 1);
    writeFileSync(join(r, "index.json"), "{not json");
    const b = new KvCacheStore(r, log);
    expect(b.list()).toEqual([]);
    expect(readdirSync(b.dirOf("alpha"))).toEqual([]);
  });

  test("the disk budget is kept by deleting the least recently used files, across models", () => {
    const store = new KvCacheStore(root(), log);
    const cfg = { ...getDefaultConfig(), kvCacheDiskMiB: 1 };
    const kv = new KvCacheService({ store, config: () => cfg, log });
    const MiB = 1024 * 1024;
    const oldest = addFile(store, "alpha", [1], Math.round(0.4 * MiB), 10);
    const used = addFile(store, "beta", [2], Math.round(0.4 * MiB), 20);
    const newest = addFile(store, "alpha", [3], Math.round(0.4 * MiB), 30);
    store.touch(used, 40, true); // restored recently: now the most recently used
    kv.enforceBudget();
    expect(store.list().map((e) => e.id).sort()).toEqual([newest, used].sort());
    expect(existsSync(join(store.dirOf("alpha"), `${oldest}.bin`))).toBe(false);
    expect(kv.counters.evictions).toBe(1);
    expect(store.totalBytes()).toBeLessThanOrEqual(MiB);
  });

  test("deleting a model's caches removes its files and its not-restorable mark", () => {
    const store = new KvCacheStore(root(), log);
    addFile(store, "alpha", [1], 100, 1);
    addFile(store, "beta", [1], 100, 1);
    store.markUnrestorable("alpha", "fp", "ignored", 5);
    expect(store.isRestorable("alpha", "fp")).toBe(false);
    expect(store.clearModel("alpha")).toBe(1);
    expect(store.isRestorable("alpha", "fp")).toBe(true);
    expect(readdirSync(store.dirOf("alpha"))).toEqual([]);
    expect(store.list("beta")).toHaveLength(1);
  });
});
