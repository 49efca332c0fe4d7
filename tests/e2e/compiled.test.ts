import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pkg from "../../package.json";
import { killAndWait, startListening } from "../helpers/process";

// Builds the single executable exactly as `npm run build` does and runs it from an empty
// directory with no node_modules: proves the embedded migrations and package.json work.
const ROOT = resolve(import.meta.dir, "../..");
let dir: string;
let exe: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lap-exe-"));
  exe = join(dir, "llama-async-proxy");
  const build = Bun.spawn([process.execPath, "scripts/build.ts"], { cwd: ROOT, env: { ...process.env, OUTFILE: exe }, stdout: "pipe", stderr: "pipe" });
  const code = await build.exited;
  if (code !== 0) throw new Error(`build failed: ${await new Response(build.stderr).text()}`);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("compiled executable", () => {
  test("starts from another directory, migrates its database, answers, and stops on SIGTERM", async () => {
    const work = join(dir, "elsewhere");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(work);
    const { proc, url } = await startListening([exe, "--port", "0"], { cwd: work });
    try {
      const health = await (await fetch(`${url}/api/health`)).json();
      expect(health.data.services.proxy.version).toBe(pkg.version);
      const models = await fetch(`${url}/api/status`);
      expect((await models.json()).data.models.registered).toBe(0);
      expect(existsSync(join(work, "data", "llama-async-proxy.db"))).toBe(true);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      await killAndWait(proc);
    }
    const version = Bun.spawnSync([exe, "--version"]);
    expect(version.stdout.toString().trim()).toBe(pkg.version);
  });
});
