#!/usr/bin/env node
// `npm start`: runs the proxy on Bun, or says what to do when Bun is missing. Plain Node (no
// dependency) so it works before Bun does: Bun arrives as the `bun` npm package, whose install
// script puts the real binary in place; with install scripts off (npm 11's allowScripts policy,
// --ignore-scripts) the placeholder left behind only fails with Bun's own puzzling error.
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { existsSync } from "node:fs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
// The project's own Bun first (npm start puts node_modules/.bin on PATH too), then one on PATH.
const local = join(root, "node_modules", ".bin", "bun");
const bun = process.env.BUN_BIN || (existsSync(local) ? local : "bun");

const probe = spawnSync(bun, ["--version"], { cwd: root, encoding: "utf8" });
if (probe.error || probe.status !== 0) {
  console.error(
    [
      "llama-async-proxy runs on Bun, and Bun is not usable here" + (probe.error ? ` (${probe.error.code ?? probe.error.message})` : `: ${(probe.stderr || probe.stdout || "").trim().split("\n")[0]}`) + ".",
      "",
      "Fix it with one of:",
      "  npm rebuild bun            runs Bun's install script (skipped when install scripts are off)",
      "  npm install                with package.json's allowScripts (bun: true) honoured, npm >= 11.16",
      "  curl -fsSL https://bun.sh/install | bash     a system-wide Bun; then `bun src/main.ts`",
      "or point BUN_BIN at a bun binary.",
    ].join("\n"),
  );
  process.exit(1);
}

const child = spawn(bun, [join(root, "src/main.ts"), ...args], { cwd: process.cwd(), stdio: "inherit" });
// Signals go to the whole foreground process group already; pass on the exit status.
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
