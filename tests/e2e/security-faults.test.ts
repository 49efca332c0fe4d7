// Finding 10 of #11, the fault parts: temp files left by a kill are removed at start; SIGTERM
// ends in-flight streams with an SSE error event (or lets them finish) before the exit.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "../../src/server";

const dir = mkdtempSync(join(tmpdir(), "lap-faults-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("finding 10: kill -9 leaves temp files that are never removed", () => {
  test("stale atomic-write temp files of dead writers are removed at start; a live writer's stay", async () => {
    const sleeper = Bun.spawn(["sleep", "30"]);
    const dead = Bun.spawn(["true"]);
    await dead.exited;
    const stale = join(dir, `.1700000000000-${dead.pid}-abc123.tmp`);
    const live = join(dir, `.1700000000000-${sleeper.pid}-def456.tmp`);
    const unrelated = join(dir, "notes.tmp");
    for (const f of [stale, live, unrelated]) writeFileSync(f, "{partial");
    const srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" });
    try {
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(live)).toBe(true);
      expect(existsSync(unrelated)).toBe(true);
    } finally {
      await srv.stop();
      sleeper.kill();
    }
  });
});
