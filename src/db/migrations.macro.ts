// A Bun macro: runs at bundle/transpile time (`import ... with { type: "macro" }`) and inlines the
// drizzle-kit migrations as data, so the compiled executable carries them (it cannot read the
// drizzle/ folder at run time: /$bunfs paths do not exist on disk).
import { readMigrationFiles } from "drizzle-orm/migrator";
import { join } from "node:path";

export function embeddedMigrations() {
  return readMigrationFiles({ migrationsFolder: join(import.meta.dir, "../../drizzle") });
}
