import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve, sep } from "node:path";
import { z } from "../zod";
import { writeFileAtomic } from "../config/store";
import type { Logger } from "../logs/logger";
import { MODEL_ID_RE } from "../models/schema";
import type { CacheSettings } from "./fingerprint";
import { readSlotFileTokens } from "./slot-file";

/**
 * Why a JSON manifest and not a table: the index describes files in a folder, and must agree with
 * that folder. A row in SQLite and a file on disk cannot change in one transaction either, so the
 * truth has to be reconciled with the folder at start-up anyway; a manifest beside the files is
 * that reconciliation's natural partner (delete the folder and the index goes with it), costs no
 * migration in a schema eight people change at once, and stays small (one entry per saved
 * conversation, bounded by the disk budget). It is written atomically (temp file, fsync, rename),
 * as the config file is.
 */
const entrySchema = z.object({
  id: z.string().check(z.regex(/^[a-z0-9-]{1,80}$/)),
  modelId: z.string().check(z.regex(MODEL_ID_RE)),
  /** File name inside the model's folder; always one we generated (see newFileName). */
  file: z.string().check(z.regex(/^[a-z0-9-]{1,80}\.bin$/)),
  fingerprint: z.string().check(z.maxLength(64)),
  settings: z.record(z.string(), z.unknown()),
  tokens: z.int().check(z.gte(0)),
  tokensHash: z.string().check(z.maxLength(64)),
  bytes: z.int().check(z.gte(0)),
  /** CRC-32 of the whole file, computed after the save (null until then). */
  crc32: z._default(z.nullable(z.int()), null),
  createdAt: z.number(),
  lastUsedAt: z.number(),
  hits: z.int().check(z.gte(0)),
});
export type KvCacheEntry = z.infer<typeof entrySchema>;

const unrestorableSchema = z.object({ modelId: z.string(), fingerprint: z.string(), reason: z.string().check(z.maxLength(500)), at: z.number() });
export type Unrestorable = z.infer<typeof unrestorableSchema>;

const manifestSchema = z.object({ version: z.literal(1), entries: z.array(entrySchema), unrestorable: z._default(z.array(unrestorableSchema), []) });

const MANIFEST = "index.json";

/** A fresh file name: time + random, only [a-z0-9-], so nothing a user sends can reach a path. */
export function newFileName(now = Date.now()): { id: string; file: string } {
  const id = `${now.toString(36)}-${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
  return { id, file: `${id}.bin` };
}

/**
 * Owns the saved-cache folder (`<dataDir>/kv-cache/<modelId>/`) and its manifest. Nothing else
 * writes there except llama-server children saving slots under names this store generated.
 */
export class KvCacheStore {
  private entries = new Map<string, KvCacheEntry>();
  private unrestorable: Unrestorable[] = [];
  /** Token prefixes read from file headers (they never change: a file is written once). */
  private tokenCache = new Map<string, Int32Array>();

  constructor(
    readonly root: string,
    private readonly log?: Logger,
  ) {
    this.load();
  }

  /** The folder llama-server saves into for this model (created on demand), inside root. */
  dirOf(modelId: string): string {
    if (!MODEL_ID_RE.test(modelId)) throw new Error(`not a model id: ${modelId}`);
    const dir = resolve(this.root, modelId);
    if (!dir.startsWith(resolve(this.root) + sep)) throw new Error(`model folder outside the cache root: ${modelId}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  pathOf(e: Pick<KvCacheEntry, "modelId" | "file">): string {
    return join(this.dirOf(e.modelId), e.file);
  }

  list(modelId?: string): KvCacheEntry[] {
    const all = [...this.entries.values()];
    return (modelId ? all.filter((e) => e.modelId === modelId) : all).sort((a, b) => b.lastUsedAt - a.lastUsedAt);
  }

  /** Whether any entry matches, without building or sorting a list (the proxy asks per request). */
  some(pred: (e: KvCacheEntry) => boolean): boolean {
    for (const e of this.entries.values()) if (pred(e)) return true;
    return false;
  }

  get(id: string): KvCacheEntry | undefined {
    return this.entries.get(id);
  }

  totalBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.bytes;
    return n;
  }

  add(entry: Omit<KvCacheEntry, "crc32"> & { crc32?: number | null }): void {
    this.entries.set(entry.id, entrySchema.parse(entry));
    this.save();
  }

  /** Forgets an entry and deletes its file. */
  remove(id: string): KvCacheEntry | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.entries.delete(id);
    this.tokenCache.delete(id);
    rmSync(this.pathOf(e), { force: true });
    this.save();
    return e;
  }

  setCrc(id: string, crc: number): void {
    const e = this.entries.get(id);
    if (!e || e.crc32 !== null) return;
    e.crc32 = crc;
    this.save();
  }

  touch(id: string, now: number, hit: boolean): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.lastUsedAt = now;
    if (hit) e.hits++;
    this.save();
  }

  /** The entry's tokens, read from its file's header; throws SlotFileError for a damaged file. */
  tokensOf(e: KvCacheEntry): Int32Array {
    let t = this.tokenCache.get(e.id);
    if (!t) {
      t = readSlotFileTokens(this.pathOf(e));
      if (this.tokenCache.size > 64) this.tokenCache.clear();
      this.tokenCache.set(e.id, t);
    }
    return t;
  }

  isRestorable(modelId: string, fingerprint: string): boolean {
    return !this.unrestorable.some((u) => u.modelId === modelId && u.fingerprint === fingerprint);
  }

  unrestorableOf(modelId: string): Unrestorable[] {
    return this.unrestorable.filter((u) => u.modelId === modelId);
  }

  markUnrestorable(modelId: string, fingerprint: string, reason: string, now: number): void {
    if (!this.isRestorable(modelId, fingerprint)) return;
    this.unrestorable.push({ modelId, fingerprint, reason: reason.slice(0, 500), at: now });
    this.save();
  }

  /** Forgets every entry (and file) of a model and its "not restorable" marks. */
  clearModel(modelId: string): number {
    const ids = this.list(modelId).map((e) => e.id);
    for (const id of ids) {
      const e = this.entries.get(id)!;
      this.entries.delete(id);
      this.tokenCache.delete(id);
      rmSync(this.pathOf(e), { force: true });
    }
    this.unrestorable = this.unrestorable.filter((u) => u.modelId !== modelId);
    this.save();
    return ids.length;
  }

  /**
   * Deletes files in a model's folder that the index does not know: saves cut short by a stop's
   * deadline, or written by a proxy that crashed before recording them. Call it only when no save
   * of this model is in progress (its stop hook runs one at a time).
   */
  sweep(modelId: string): number {
    const dir = this.dirOf(modelId);
    const known = new Set(this.list(modelId).map((e) => e.file));
    let removed = 0;
    for (const name of readdirSync(dir)) {
      if (known.has(name)) continue;
      rmSync(join(dir, name), { force: true, recursive: true });
      removed++;
    }
    return removed;
  }

  private load(): void {
    mkdirSync(this.root, { recursive: true });
    const path = join(this.root, MANIFEST);
    if (existsSync(path)) {
      try {
        const m = manifestSchema.parse(JSON.parse(readFileSync(path, "utf8")));
        for (const e of m.entries) this.entries.set(e.id, e);
        this.unrestorable = m.unrestorable;
      } catch (err) {
        // The files are only a cache: a bad index costs a re-computation, never a refusal to start.
        this.log?.warn(`KV cache index ${path} is unreadable (${(err as Error).message}); starting with an empty cache`);
      }
    }
    // Reconcile with the folder: entries whose file is gone or changed size are dropped.
    let dropped = 0;
    for (const e of [...this.entries.values()]) {
      let size = -1;
      try {
        size = statSync(this.pathOf(e)).size;
      } catch {
        // missing
      }
      if (size !== e.bytes) {
        this.entries.delete(e.id);
        rmSync(this.pathOf(e), { force: true });
        dropped++;
      }
    }
    // ... and files no entry names are deleted (a folder per model, nothing else in it).
    for (const name of readdirSync(this.root)) {
      if (name === MANIFEST || name.startsWith(".")) continue;
      if (!MODEL_ID_RE.test(name)) continue;
      try {
        if (statSync(join(this.root, name)).isDirectory()) dropped += this.sweep(name);
      } catch {
        // raced with a delete
      }
    }
    // Written only when something changed: start-up stays free of fsyncs on the common path.
    if (dropped) {
      this.log?.info(`KV cache: dropped ${dropped} stale file(s) or entries at start-up`);
      this.save();
    }
  }

  private save(): void {
    const body = { version: 1, entries: [...this.entries.values()], unrestorable: this.unrestorable };
    writeFileAtomic(join(this.root, MANIFEST), JSON.stringify(body, null, 1));
  }
}

export type { CacheSettings };
