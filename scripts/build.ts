// `npm run build`: one self-contained executable in dist/ (bun build --compile). The migrations
// (src/db/migrations.macro.ts), package.json and the console's static files are embedded.
// --bytecode: the modules ship as precompiled bytecode, so start-up does not parse ~0.5 MB of
// JavaScript (bench/footprint.ts: CPU to the first answer about halved). ESM output keeps
// main.ts's top-level await (bytecode otherwise defaults to CommonJS).
import { $ } from "bun";
import { mkdirSync } from "node:fs";

const out = process.env.OUTFILE ?? "dist/llama-async-proxy";
mkdirSync("dist", { recursive: true });
await $`bun build src/main.ts --compile --minify --sourcemap --bytecode --format=esm --outfile ${out}`;
console.log(`built ${out}`);
