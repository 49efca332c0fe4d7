import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pkg from "../../package.json";
import { killAndWait, startListening } from "../helpers/process";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");
const BUN = process.execPath;
let dir: string;
const procs: Subprocess[] = [];

beforeAll(() => (dir = mkdtempSync(join(tmpdir(), "lap-proc-"))));
afterEach(async () => {
  for (const p of procs.splice(0)) await killAndWait(p);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn([BUN, MAIN, ...args], { cwd: dir, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, stdout, stderr };
}

describe("the real process", () => {
  test("serves with zero set-up, then shuts down cleanly on SIGTERM", async () => {
    const dataDir = join(dir, "zero");
    const { proc, url, stderr } = await startListening([BUN, MAIN, "--port", "0", "--data-dir", dataDir], { cwd: dir });
    procs.push(proc);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${url}/api/health`);
    const body = await health.json();
    expect(body.success).toBe(true);
    expect(body.data.services.proxy.version).toBe(pkg.version);
    expect(existsSync(join(dataDir, "llama-async-proxy.db"))).toBe(true);

    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    await stderr.wait(/shutting down/);
    // stopped accepting: the port refuses connections now
    await expect(fetch(`${url}/api/health`)).rejects.toThrow();
  });

  test("a SIGTERM the moment 'listening on' is printed is a clean shutdown, not the bare exit", async () => {
    // The banner comes before the background starts (src/server.ts onListening): from then on
    // a signal must go through stop(), which waits for them, not exit as if nothing ran yet.
    const { proc, stderr } = await startListening([BUN, MAIN, "--port", "0", "--data-dir", join(dir, "early")], { cwd: dir });
    procs.push(proc);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    await stderr.wait(/Received SIGTERM, shutting down/);
  });

  test("SIGINT shuts down cleanly too", async () => {
    // --log-level error hides info lines, never the readiness line on stdout.
    const { proc } = await startListening([BUN, MAIN, "--port", "0", "--log-level", "error", "--data-dir", join(dir, "int")], { cwd: dir });
    procs.push(proc);
    proc.kill("SIGINT");
    expect(await proc.exited).toBe(0);
  });

  test("PORT, HOST and DATA_DIR come from the environment", async () => {
    const { proc, url } = await startListening([BUN, MAIN], { cwd: dir, env: { PORT: "0", HOST: "127.0.0.1", DATA_DIR: join(dir, "envdata") } });
    procs.push(proc);
    expect((await fetch(`${url}/api/status`)).status).toBe(200);
    expect(existsSync(join(dir, "envdata", "llama-async-proxy.db"))).toBe(true);
  });
});

describe("flags", () => {
  test("--help and --version", async () => {
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    for (const flag of ["--port", "--host", "--config", "--data-dir", "--log-level", "--help", "--version"]) expect(help.stdout).toContain(flag);
    const version = await run(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(pkg.version);
  });

  const bad: Array<[string[], Record<string, string>, RegExp]> = [
    [["--port", "abc"], {}, /Invalid port "abc"/],
    [["--port", "70000"], {}, /Invalid port "70000"/],
    [[], { PORT: "-1" }, /Invalid port "-1"/],
    [["--log-level", "loud"], {}, /Invalid log level "loud"/],
    [["--frobnicate"], {}, /Unknown option '--frobnicate'/],
    [["--host", "0.0.0.0"], {}, /Refusing to bind to 0\.0\.0\.0 without an API key/],
    [["--api-key", "short"], {}, /at least 8 characters/],
  ];
  for (const [args, env, message] of bad) {
    test(`exit 2 with a clear message for ${JSON.stringify(args)} ${JSON.stringify(env)}`, async () => {
      const r = await run(args, env);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain("--help");
    });
  }

  test("a port already in use is a clear error, not a crash dump", async () => {
    const blocker = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("x") });
    try {
      const r = await run(["--port", String(blocker.port), "--data-dir", join(dir, "busy")]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`port ${blocker.port} is already in use`);
    } finally {
      blocker.stop(true);
    }
  });
});
