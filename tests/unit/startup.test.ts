import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type RunningServer } from "../../src/server";
import { StartupTimings } from "../../src/startup";

let running: RunningServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("StartupTimings: each mark is the time since the previous one; repeated names add up", async () => {
  const t = new StartupTimings(performance.now());
  await Bun.sleep(3);
  t.mark("a");
  await Bun.sleep(5);
  t.mark("b");
  await Bun.sleep(3);
  t.mark("a");
  const entries = t.describe().split(", ").map((p) => [p.slice(0, p.lastIndexOf(" ")), Number(p.slice(p.lastIndexOf(" ") + 1))] as const);
  // "a" once (both of its marks added up), in the place it first ran.
  expect(entries.map(([name]) => name)).toEqual(["a", "b"]);
  const parts = Object.fromEntries(entries);
  expect(parts.a).toBeGreaterThanOrEqual(5);
  expect(parts.b).toBeGreaterThanOrEqual(4);
  expect(t.totalMs).toBeCloseTo(parts.a! + parts.b!, 0);
});

test("startServer logs one debug line with the time of each start-up step", async () => {
  dir = mkdtempSync(join(tmpdir(), "lap-startup-"));
  const startup = new StartupTimings();
  running = await startServer({
    port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "debug",
    environment: "test", quiet: true, databasePath: join(dir, "db.sqlite"), startup,
  });
  const [line] = running.services.logs.query({ q: "Start-up steps" });
  expect(line?.level).toBe("debug");
  for (const step of ["database + migrations", "listen", "first metrics sample"]) expect(line!.message).toContain(step);
  expect(line!.message).toMatch(/total [\d.]+; RSS [\d.]+ MB/);
  // The steps the debug line names are the ones the server ran, in order.
  const names = line!.message.replace(/^Start-up steps \(ms\): /, "").split("; ")[0]!.split(", ").map((p) => p.replace(/ [\d.]+$/, ""));
  expect(names.indexOf("listen")).toBeLessThan(names.indexOf("first metrics sample"));
  expect(names.indexOf("database + migrations")).toBeLessThan(names.indexOf("listen"));
});

test("StartupTimings also records each step's CPU time: busy work counts, waiting does not", async () => {
  const t = new StartupTimings(performance.now());
  await Bun.sleep(10);
  t.mark("waiting");
  // Busy until this process has used 50 ms more CPU (by wall time a loaded machine gives less).
  const used = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const until = used() + 50;
  let x = 0;
  while (used() < until) for (let i = 0; i < 1000; i++) x += Math.sqrt(x + 1);
  t.mark("busy");
  const cpu = Object.fromEntries(t.describe("cpu").split(", ").map((p) => [p.slice(0, p.lastIndexOf(" ")), Number(p.slice(p.lastIndexOf(" ") + 1))]));
  expect(x).toBeGreaterThan(0);
  expect(cpu.busy).toBeGreaterThanOrEqual(49);
  // A sleep costs this test no CPU; what the step shows is other threads' (GC, JIT, other suites'
  // servers in this process): on two cores at most ~20 ms in 10 ms, less than the busy step.
  expect(cpu.waiting ?? 0).toBeLessThan(cpu.busy!);
  expect(t.totalCpuMs).toBeGreaterThanOrEqual(cpu.busy!);
});
