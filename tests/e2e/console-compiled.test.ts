// The console from the compiled executable, run from a directory with no node_modules and no
// static/: htmx, uPlot and our CSS/JS must come from inside the binary, with cache headers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { killAndWait, startListening } from "../helpers/process";

const ROOT = resolve(import.meta.dir, "../..");
const SOURCES: Record<string, string> = {
  "htmx.min.js": "node_modules/htmx.org/dist/htmx.min.js",
  "uPlot.iife.min.js": "node_modules/uplot/dist/uPlot.iife.min.js",
  "uPlot.min.css": "node_modules/uplot/dist/uPlot.min.css",
  "app.css": "static/app.css",
  "console.js": "static/console.js",
};
let dir: string;
let exe: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lap-console-exe-"));
  exe = join(dir, "llama-async-proxy");
  const build = Bun.spawn([process.execPath, "scripts/build.ts"], { cwd: ROOT, env: { ...process.env, OUTFILE: exe }, stdout: "pipe", stderr: "pipe" });
  if ((await build.exited) !== 0) throw new Error(`build failed: ${await new Response(build.stderr).text()}`);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("console in the compiled executable", () => {
  test("pages render and every static file is the embedded original, cacheable", async () => {
    const work = join(dir, "elsewhere");
    mkdirSync(work);
    const { proc, url } = await startListening([exe, "--port", "0"], { cwd: work });
    try {
      for (const path of ["/", "/models", "/monitoring", "/logs", "/settings", "/playground"]) {
        const res = await fetch(url + path);
        expect(res.status).toBe(200);
        expect(await res.text()).toContain("<h1>");
      }
      const page = await (await fetch(`${url}/monitoring`)).text();
      for (const [name, source] of Object.entries(SOURCES)) {
        const href = page.match(new RegExp(`/static/${name.replace(/\./g, "\\.")}\\?v=[a-z0-9]+`))?.[0];
        expect(href).toBeDefined();
        const res = await fetch(url + href);
        expect(res.status).toBe(200);
        expect(res.headers.get("cache-control")).toContain("immutable");
        expect(Buffer.from(await res.arrayBuffer()).equals(readFileSync(join(ROOT, source)))).toBe(true);
      }
    } finally {
      await killAndWait(proc);
    }
  }, 60_000);
});
