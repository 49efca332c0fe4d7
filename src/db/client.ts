import { Database } from "bun:sqlite";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import type { MigrationMeta } from "drizzle-orm/migrator";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { embeddedMigrations } from "./migrations.macro" with { type: "macro" };
import * as schema from "./schema";

export type Db = BunSQLiteDatabase<typeof schema> & { $client: Database };

/**
 * Opens the one SQLite handle of the process with fixed pragmas and applies the embedded
 * migrations. WAL lets readers (API) run while the collector writes; busy_timeout makes a
 * concurrent writer wait instead of failing with SQLITE_BUSY.
 */
export function openDatabase(path: string): Db {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path, { create: true, strict: true });
  // synchronous before journal_mode: switching a new file to WAL then costs one fsync less
  // (~5 ms of a first start on this kind of disk); the settings end up the same.
  sqlite.exec("PRAGMA synchronous = NORMAL");
  sqlite.exec("PRAGMA journal_mode = WAL");
  sqlite.exec("PRAGMA busy_timeout = 5000");
  sqlite.exec("PRAGMA foreign_keys = ON");
  const db = drizzle({ client: sqlite, schema }) as Db;
  migrate(db);
  return db;
}

/** Drizzle's own migrator, fed from the embedded migrations instead of a folder. */
function migrate(db: Db): void {
  const migrations = embeddedMigrations() as unknown as MigrationMeta[];
  // dialect.migrate is what drizzle-orm/bun-sqlite/migrator calls after reading the folder; it
  // keeps the same __drizzle_migrations bookkeeping, so drizzle-kit stays compatible.
  (db as any).dialect.migrate(migrations, (db as any).session, { migrationsFolder: "" });
}

export function closeDatabase(db: Db): void {
  db.$client.close();
}
