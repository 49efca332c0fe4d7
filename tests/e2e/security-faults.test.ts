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

describe("finding 10: half-open connections are never closed", () => {
  test("an idle keep-alive connection is closed after idleTimeout; long silent requests are never cut", async () => {
    const { connect } = await import("node:net");
    const { resolve } = await import("node:path");
    const d = mkdtempSync(join(tmpdir(), "lap-idle-"));
    const srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: d, configPath: join(d, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:", idleTimeoutSeconds: 1 });
    try {
      // 1. Raw socket: one request, then silence. Closed by us within a few seconds.
      const closedAfter = await new Promise<number>((done, reject) => {
        const t0 = Date.now();
        const sock = connect(srv.server.port!, "127.0.0.1", () => sock.write("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        sock.on("data", () => {});
        sock.on("close", () => done(Date.now() - t0));
        sock.on("error", reject);
        setTimeout(() => reject(new Error("the idle connection was not closed within 10 s")), 10_000);
      });
      expect(closedAfter).toBeLessThan(10_000);

      // 2. Requests that are silent longer than the idle bound still complete.
      const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");
      srv.services.config.update({ ...srv.services.config.get(), serverPath: FAKE, host: "127.0.0.1", port: 24000 + Math.floor(Math.random() * 8000), stopTimeoutSeconds: 2 });
      const file = join(d, "slow.gguf");
      writeFileSync(file, "GGUF fake");
      srv.services.registry.insert([{ id: "slow", name: "slow", path: file, size: 9, family: "llama", format: "gguf", settings: { extraArgs: ["--fake-load-ms", "2500", "--fake-token-delay-ms", "700"] } }]);
      const json = { "content-type": "application/json" };
      // A load of 2.5 s behind POST /api/models/:id/start (no bytes until it runs).
      const start = await fetch(`${srv.url}/api/models/slow/start`, { method: "POST", headers: json });
      expect(start.status).toBe(200);
      // A non-streaming generation of 4 x 700 ms: nothing is sent until it is done.
      const chat = await fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: json, body: JSON.stringify({ model: "slow", messages: [{ role: "user", content: "x" }], max_tokens: 4 }) });
      expect(chat.status).toBe(200);
      expect(((await chat.json()) as any).usage.completion_tokens).toBe(4);
      // A stream (the relay keeps the timeout lifted until it ends).
      const stream = await fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: json, body: JSON.stringify({ model: "slow", messages: [{ role: "user", content: "x" }], max_tokens: 3, stream: true }) });
      const text = await stream.text();
      expect(text).toContain("data: [DONE]");
    } finally {
      await srv.stop();
      rmSync(d, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("finding 10: no global budget for request bodies", () => {
  test("bodies in flight share one budget: past it 503 with Retry-After, bigger than it 413", async () => {
    const { resolve } = await import("node:path");
    const d = mkdtempSync(join(tmpdir(), "lap-budget-"));
    const MB = 1024 * 1024;
    const srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: d, configPath: join(d, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:", maxInFlightBodyBytes: 3 * MB, proxy: { maxBodyBytes: 4 * MB } });
    try {
      const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");
      srv.services.config.update({ ...srv.services.config.get(), serverPath: FAKE, host: "127.0.0.1", port: 24000 + Math.floor(Math.random() * 8000), stopTimeoutSeconds: 2 });
      const file = join(d, "m.gguf");
      writeFileSync(file, "GGUF fake");
      srv.services.registry.insert([{ id: "m", name: "m", path: file, size: 9, family: "llama", format: "gguf", settings: { extraArgs: ["--fake-load-ms", "1500"] } }]);
      const body = (mb: number) => JSON.stringify({ model: "m", messages: [{ role: "user", content: "x".repeat(mb * MB) }], max_tokens: 1 });
      const post = (b: string) => fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: b });
      // Two 1 MB bodies wait for the load (holding their bytes); a third 2 MB one does not fit.
      const first = post(body(1));
      const second = post(body(1));
      const { waitFor } = await import("../helpers/services");
      await waitFor(() => srv.services.bodyBudget.bytesInFlight > 2 * MB, "two bodies in flight", 5000);
      const third = await post(body(2));
      expect(third.status).toBe(503);
      expect(third.headers.get("retry-after")).toBe("1");
      expect(((await third.json()) as any).error.code).toBe("service_unavailable");
      const tooBig = await post(body(3.5));
      expect(tooBig.status).toBe(413);
      expect((await first).status).toBe(200);
      expect((await second).status).toBe(200);
      expect(srv.services.bodyBudget.bytesInFlight).toBe(0);
      // Once they are done, a big body fits again.
      expect((await post(body(2))).status).toBe(200);
    } finally {
      await srv.stop();
      rmSync(d, { recursive: true, force: true });
    }
  }, 60_000);
});
