// `npm run build`: one self-contained executable in dist/ (bun build --compile). The migrations
// (src/db/migrations.macro.ts), package.json and the console's static files are embedded.
import { $ } from "bun";
import { mkdirSync } from "node:fs";

const out = process.env.OUTFILE ?? "dist/llama-async-proxy";
mkdirSync("dist", { recursive: true });
await $`bun build src/main.ts --compile --minify --sourcemap --outfile ${out}`;
console.log(`built ${out}`);
