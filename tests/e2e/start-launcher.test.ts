import { expect, test } from "bun:test";
import { join } from "node:path";

// `npm start` is `node scripts/start.mjs`: without a working Bun it must say what to do, not fail
// with Bun's own error; with one, it runs the proxy's CLI.
const ROOT = join(import.meta.dir, "../..");
const node = Bun.which("node");

test.skipIf(!node)("without a usable Bun, npm start says how to get one and exits 1", async () => {
  const p = Bun.spawn([node!, "scripts/start.mjs", "--help"], { cwd: ROOT, env: { ...process.env, BUN_BIN: join(ROOT, "no-such-bun") }, stdout: "pipe", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  expect(code).toBe(1);
  expect(err).toContain("runs on Bun, and Bun is not usable here");
  expect(err).toContain("npm rebuild bun");
});

test.skipIf(!node)("with Bun, npm start runs the proxy's CLI", async () => {
  const p = Bun.spawn([node!, "scripts/start.mjs", "--help"], { cwd: ROOT, env: { ...process.env, BUN_BIN: process.execPath }, stdout: "pipe", stderr: "pipe" });
  const [code, out] = await Promise.all([p.exited, new Response(p.stdout).text()]);
  expect(code).toBe(0);
  expect(out).toContain("Usage: llama-async-proxy");
});
