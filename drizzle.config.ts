import { defineConfig } from "drizzle-kit";

// `npm run db:generate` writes SQL migrations into drizzle/; src/db/migrations.ts embeds them
// into the build (a compiled executable cannot read a migrations folder at run time).
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./drizzle",
});
