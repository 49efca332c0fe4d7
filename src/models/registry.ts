import { eq } from "drizzle-orm";
import { basename } from "node:path";
import type { Db } from "../db/client";
import { models, type ModelRow, type ModelSettings, type NewModelRow } from "../db/schema";
import type { EventBus } from "../events";

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
  constructor(
    private readonly db: Db,
    private readonly bus?: EventBus,
  ) {}

  list(): ModelRow[] {
    return this.db.select().from(models).orderBy(models.name).all();
  }

  get(id: string): ModelRow | undefined {
    return this.db.select().from(models).where(eq(models.id, id)).get();
  }

  findByPath(path: string): ModelRow | undefined {
    return this.db.select().from(models).where(eq(models.path, path)).get();
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
    const inserted = this.db.transaction((tx) => rows.map((r) => tx.insert(models).values(r).returning().get()));
    this.bus?.emit("models.changed", { reason: "registered", ids: inserted.map((m) => m.id) });
    return inserted;
  }

  update(id: string, patch: Partial<Omit<NewModelRow, "id">>): ModelRow | undefined {
    const row = this.db
      .update(models)
      .set({ ...patch, updatedAt: new Date().toISOString() })
      .where(eq(models.id, id))
      .returning()
      .get();
    if (row) this.bus?.emit("models.changed", { reason: "updated", ids: [id] });
    return row;
  }

  updateSettings(id: string, settings: ModelSettings): ModelRow | undefined {
    return this.update(id, { settings });
  }

  remove(id: string): boolean {
    const res = this.db.delete(models).where(eq(models.id, id)).returning({ id: models.id }).all();
    if (res.length) this.bus?.emit("models.changed", { reason: "removed", ids: [id] });
    return res.length > 0;
  }

  /** Records a proxied request (Model.lastUsed). */
  touch(id: string, at = new Date()): void {
    this.db.update(models).set({ lastUsed: at.toISOString() }).where(eq(models.id, id)).run();
  }
}
