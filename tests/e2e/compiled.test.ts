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

  test("a bunfig.toml or .env in the directory it is started from is not read (no preload runs, no setting changes)", async () => {
    // Bun's standalone executables load both from the working directory unless built not to:
    // a preload there ran its code even for --version, and a .env chose the port, the config
    // file (and so the binary we start) or the host. scripts/build.ts turns both off.
    const { mkdirSync, writeFileSync } = await import("node:fs");
    const work = join(dir, "untrusted");
    mkdirSync(work);
    const marker = join(work, "preload-ran");
    writeFileSync(join(work, "evil.js"), `require("fs").writeFileSync(${JSON.stringify(marker)}, "ran");\n`);
    writeFileSync(join(work, "bunfig.toml"), `preload = ["./evil.js"]\n`);
    writeFileSync(join(work, ".env"), `LOG_LEVEL=debug\nDATA_DIR=${join(work, "from-dotenv")}\n`);
    const version = Bun.spawnSync([exe, "--version"], { cwd: work });
    expect(version.stdout.toString().trim()).toBe(pkg.version);
    expect(existsSync(marker)).toBe(false);
    const { proc, url, stderr } = await startListening([exe, "--port", "0"], { cwd: work });
    try {
      expect((await fetch(`${url}/api/monitoring`)).status).toBe(200);
      expect(existsSync(marker)).toBe(false);
      // The default data dir (./data), not the .env's; and no debug lines.
      expect(existsSync(join(work, "data", "llama-async-proxy.db"))).toBe(true);
      expect(existsSync(join(work, "from-dotenv"))).toBe(false);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      expect(stderr.text).not.toContain("DEBUG");
    } finally {
      await killAndWait(proc);
    }
  });
});
