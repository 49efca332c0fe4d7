import { eq } from "drizzle-orm";
import { realpathSync, statSync } from "node:fs";
import { basename, sep } from "node:path";
import type { Db } from "../db/client";
import { models, type ModelRow, type NewModelRow } from "../db/schema";
import type { EventBus } from "../events";
import type { FoundModel } from "./discover";

/** What a rescan changed in the registry. */
export interface ScanApplied {
  /** Rows of every model found by the scan, after the update. */
  rows: ModelRow[];
  added: string[];
  updated: string[];
  /** Ids of models under the scanned folders whose file is gone. */
  missing: string[];
}

/** True when `path` is `root` itself or inside it (string prefix on a separator boundary). */
function isUnder(path: string, root: string, recursive: boolean): boolean {
  const r = root.endsWith(sep) ? root : root + sep;
  if (!path.startsWith(r)) return false;
  return recursive || !path.slice(r.length).includes(sep);
}

function fileExists(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** A stable, URL-safe id from a model name: "Llama 3 8B (Q4_K_M)" -> "llama-3-8b-q4_k_m". */
export function slugify(name: string): string {
  const slug = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/\.gguf$|\.bin$/, "")
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, 120);
  return slug || "model";
}

/**
 * The model registry: the single owner of the models table (Drizzle queries only, no process
 * state). Runtime status lives in the supervisor and is merged in by the views.
 */
export class ModelRegistry {
  /**
   * Every row, by id, sorted by name; null until first read and after every write. This class is
   * the only writer of the table, so the cache cannot go stale, and the proxy's hot path (model
   * lookup per request) stays in memory instead of paying a query each time.
   */
  private cache: { byId: Map<string, ModelRow>; sorted: ModelRow[] } | null = null;

  private rows() {
    if (!this.cache) {
      const sorted = this.db.select().from(models).orderBy(models.name).all();
      this.cache = { sorted, byId: new Map(sorted.map((r) => [r.id, r])) };
    }
    return this.cache;
  }

  /** Runs a write and drops the cache, whether the write succeeded or not. */
  private write<T>(fn: () => T): T {
    try {
      return fn();
    } finally {
      this.cache = null;
    }
  }

  constructor(
    private readonly db: Db,
    private readonly bus?: EventBus,
  ) {
    // "discovered until registered or started": a discovered model that ran is the user's now.
    bus?.on("model.status", (e) => {
      if (e.status === "running") this.promote(e.modelId);
    });
  }

  /** All models sorted by name. The rows are shared: treat them as read-only. */
  list(): ModelRow[] {
    return this.rows().sorted.slice();
  }

  /**
   * How many models are registered: the cache's length when it is filled, else a COUNT rather
   * than reading every row. The first metrics sample asks before anything else has read the
   * table, and Drizzle's first full select was 2.3-4.3 ms of that sample (compiled, on the first
   * answer's path; bench/RESULTS.md "#16, round five").
   */
  async count(): Promise<number> {
    return this.cache ? this.cache.sorted.length : await this.db.$count(models);
  }

  get(id: string): ModelRow | undefined {
    return this.rows().byId.get(id);
  }

  findByPath(path: string): ModelRow | undefined {
    return this.rows().sorted.find((r) => r.path === path);
  }

  /**
   * Finds the model a client means by `name`: its id, its name, one of its aliases, or its file
   * name (with or without .gguf), in that order of preference.
   */
  resolve(name: string): ModelRow | undefined {
    const byId = this.get(name);
    if (byId) return byId;
    const all = this.list();
    const lower = name.toLowerCase();
    return (
      all.find((m) => m.name === name) ??
      all.find((m) => (m.settings.aliases ?? []).includes(name)) ??
      all.find((m) => m.name.toLowerCase() === lower) ??
      all.find((m) => {
        const file = basename(m.path).toLowerCase();
        return file === lower || file.replace(/\.(gguf|bin)$/, "") === lower;
      })
    );
  }

  insert(rows: NewModelRow[]): ModelRow[] {
    if (rows.length === 0) return [];
    // One transaction: a request registering several models registers all or none.
    const inserted = this.write(() => this.db.transaction((tx) => rows.map((r) => tx.insert(models).values(r).returning().get())));
    this.bus?.emit("models.changed", { reason: "registered", ids: inserted.map((m) => m.id) });
    return inserted;
  }

  update(id: string, patch: Partial<Omit<NewModelRow, "id">>): ModelRow | undefined {
    const row = this.write(() =>
      this.db.update(models).set({ ...patch, updatedAt: new Date().toISOString() }).where(eq(models.id, id)).returning().get(),
    );
    if (row) this.bus?.emit("models.changed", { reason: "updated", ids: [id] });
    return row;
  }

  /**
   * Registers rows in one transaction (all or none). A row whose path is held by a *discovered*
   * model replaces it (the user adopted what the scan found): its settings and lastUsed carry over.
   * The caller has already checked conflicts with registered models.
   */
  register(rows: NewModelRow[]): ModelRow[] {
    if (rows.length === 0) return [];
    const inserted = this.write(() => this.db.transaction((tx) =>
      rows.map((r) => {
        const previous = tx.select().from(models).where(eq(models.path, r.path)).get();
        if (previous) tx.delete(models).where(eq(models.id, previous.id)).run();
        return tx
          .insert(models)
          .values({
            ...r,
            source: "registered",
            settings: { ...(previous?.settings ?? {}), ...(r.settings ?? {}) },
            lastUsed: previous?.lastUsed ?? null,
          })
          .returning()
          .get();
      }),
    ));
    this.bus?.emit("models.changed", { reason: "registered", ids: inserted.map((m) => m.id) });
    return inserted;
  }

  /** A discovered model becomes registered (e.g. once it was started): it stays after its file moves. */
  promote(id: string): void {
    const row = this.get(id);
    if (row?.source === "discovered") this.update(id, { source: "registered" });
  }

  /**
   * Merges a scan into the table in one transaction: new files are added as "discovered", known
   * paths are updated in place (a registered model keeps what the user set and only gets its
   * size, projector and missing metadata refreshed), and models under the scanned folders that
   * the scan did not see and whose file no longer exists are marked missing.
   */
  applyScan(found: FoundModel[], roots: string[], recursive: boolean): ScanApplied {
    const added: string[] = [];
    const updated: string[] = [];
    const missing: string[] = [];
    const seen = new Set(found.map((f) => f.path));
    // One read of the table instead of a query per file: a 1,000-file rescan costs milliseconds,
    // and rows that did not change are not written at all.
    const rows = this.write(() => this.db.transaction((tx) => {
      const all = tx.select().from(models).all();
      const byPath = new Map(all.map((r) => [r.path, r]));
      const ids = new Set(all.map((r) => r.id));
      const out: ModelRow[] = [];
      const inserts: NewModelRow[] = [];
      const now = new Date().toISOString();
      // The same file reached by another path (a linked folder) is the same model: matched by
      // realpath, built only if some found path is not already known.
      let byReal: Map<string, ModelRow> | undefined;
      const sameFile = (path: string): ModelRow | undefined => {
        byReal ??= new Map(all.flatMap((r) => { const real = realPathOf(r.path); return real ? [[real, r] as const] : []; }));
        const real = realPathOf(path);
        return real ? byReal.get(real) : undefined;
      };
      for (const f of found) {
        const existing = byPath.get(f.path) ?? sameFile(f.path);
        const meta = {
          size: f.size,
          format: f.format,
          family: f.family,
          quantization: f.quantization ?? null,
          contextSize: f.contextSize ?? null,
          mmprojPath: f.mmprojPath ?? null,
          missing: false,
        };
        if (!existing) {
          let id = slugify(f.name);
          for (let n = 2; ids.has(id); n++) id = `${slugify(f.name).slice(0, 112)}-${n}`;
          ids.add(id);
          inserts.push({ id, name: f.name, description: f.description ?? null, version: f.version ?? null, path: f.path, source: "discovered", ...meta });
          continue;
        }
        const set: Partial<ModelRow> =
          existing.source === "discovered"
            ? { ...meta, name: f.name, description: f.description ?? null, version: f.version ?? null }
            : {
                size: f.size,
                missing: false,
                // What the user registered wins; the file fills only what is still empty.
                format: existing.format ?? f.format,
                quantization: existing.quantization ?? f.quantization ?? null,
                contextSize: existing.contextSize ?? f.contextSize ?? null,
                mmprojPath: existing.mmprojPath ?? f.mmprojPath ?? null,
                family: existing.family === "unknown" ? f.family : existing.family,
              };
        const changed = (Object.keys(set) as (keyof ModelRow)[]).some((k) => set[k] !== existing[k]);
        if (!changed) {
          out.push(existing);
          continue;
        }
        out.push(tx.update(models).set({ ...set, updatedAt: now }).where(eq(models.id, existing.id)).returning().get());
        updated.push(existing.id);
      }
      // Multi-row inserts, chunked below SQLite's bound-parameter limit.
      for (let i = 0; i < inserts.length; i += 500) {
        const batch = tx.insert(models).values(inserts.slice(i, i + 500)).returning().all();
        out.push(...batch);
        added.push(...batch.map((r) => r.id));
      }
      for (const row of all) {
        if (seen.has(row.path) || !roots.some((r) => isUnder(row.path, r, recursive))) continue;
        // Not seen may also mean "excluded by this scan's patterns": only a vanished file is missing.
        const gone = !fileExists(row.path);
        if (gone !== row.missing) tx.update(models).set({ missing: gone, updatedAt: now }).where(eq(models.id, row.id)).run();
        if (gone) missing.push(row.id);
      }
      return out;
    }));
    rows.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const changed = [...added, ...updated, ...missing];
    if (changed.length) this.bus?.emit("models.changed", { reason: "discovered", ids: changed });
    return { rows, added, updated, missing };
  }

  remove(id: string): boolean {
    const res = this.write(() => this.db.delete(models).where(eq(models.id, id)).returning({ id: models.id }).all());
    if (res.length) this.bus?.emit("models.changed", { reason: "removed", ids: [id] });
    return res.length > 0;
  }

  /** When markUsed last wrote each model's lastUsed (ms). */
  private readonly lastMarked = new Map<string, number>();

  /**
   * A request used the model: its lastUsed is written at most once a second per model (a DB
   * write on the request path; the routes of /v1, the native paths and Ollama's all call this).
   */
  markUsed(id: string, now = Date.now()): void {
    if (now - (this.lastMarked.get(id) ?? 0) < 1000) return;
    this.lastMarked.set(id, now);
    this.touch(id, new Date(now));
  }

  /** Records a proxied request (Model.lastUsed), now. */
  touch(id: string, at = new Date()): void {
    const lastUsed = at.toISOString();
    this.db.update(models).set({ lastUsed }).where(eq(models.id, id)).run();
    // Patch the cached row instead of dropping the cache: this runs on the request path.
    const cached = this.cache?.byId.get(id);
    if (cached && this.cache) {
      const next = { ...cached, lastUsed };
      this.cache.byId.set(id, next);
      this.cache.sorted = this.cache.sorted.map((r) => (r.id === id ? next : r));
    }
  }
}

function realPathOf(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
