import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/app";
import { createServices, shutdownServices, type Services } from "../../src/services";

let dir: string;
let s: Services;
let app: ReturnType<typeof createApp>;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lap-logs-"));
  s = createServices({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" });
  app = createApp(s);
  s.logs.append("info", "proxy", "Listening on 127.0.0.1:3000");
  s.logs.append("warn", "proxy", "Slow request to tiny");
  s.logs.append("info", "llama-server:tiny", "main: server is listening on http://127.0.0.1:8134", { pid: 42 });
  s.logs.append("error", "llama-server:tiny", "CUDA error: out of memory");
  s.logs.append("debug", "llama-server:big", "slot update_slots: id 0 | task 3 | prompt done");
});
afterEach(async () => {
  await shutdownServices(s);
  rmSync(dir, { recursive: true, force: true });
});

const logs = async (qs = "") => {
  const res = await app.request(`/api/logs${qs}`);
  return { res, body: (await res.json()) as any };
};
const messages = (body: any) => body.data.logs.map((l: any) => l.message);

describe("GET /api/logs", () => {
  test("returns LogEntry objects oldest first in the envelope", async () => {
    const { res, body } = await logs();
    expect(res.status).toBe(200);
    expect(body.success).toBe(true);
    expect(body.data.logs).toHaveLength(5);
    const e = body.data.logs[2];
    expect(Object.keys(e).sort()).toEqual(["id", "level", "message", "metadata", "source", "timestamp"]);
    expect(e).toMatchObject({ level: "info", source: "llama-server:tiny", metadata: { pid: 42 } });
    expect(body.data.sources).toEqual(["llama-server:big", "llama-server:tiny", "proxy"]);
    expect(typeof body.data.timestamp).toBe("string");
  });

  test("level is a threshold: warn gives error and warn", async () => {
    const { body } = await logs("?level=warn");
    expect(messages(body)).toEqual(["Slow request to tiny", "CUDA error: out of memory"]);
  });

  test("source exact, or every llama-server with a prefix", async () => {
    expect(messages((await logs("?source=proxy")).body)).toHaveLength(2);
    expect(messages((await logs("?source=llama-server:tiny")).body)).toEqual([
      "main: server is listening on http://127.0.0.1:8134",
      "CUDA error: out of memory",
    ]);
    expect(messages((await logs("?source=llama-server:*")).body)).toHaveLength(3);
  });

  test("q is a case-insensitive substring; since and afterId cut older entries", async () => {
    expect(messages((await logs("?q=cuda")).body)).toEqual(["CUDA error: out of memory"]);
    const all = (await logs()).body.data.logs;
    const third = all[2];
    expect(messages((await logs(`?afterId=${third.id}`)).body)).toEqual(["CUDA error: out of memory", "slot update_slots: id 0 | task 3 | prompt done"]);
    const future = new Date(Date.now() + 60_000).toISOString();
    expect((await logs(`?since=${encodeURIComponent(future)}`)).body.data.logs).toEqual([]);
    const past = new Date(Date.now() - 60_000).toISOString();
    expect((await logs(`?since=${encodeURIComponent(past)}`)).body.data.logs).toHaveLength(5);
  });

  test("limit keeps the newest N (default 100, at most 1000)", async () => {
    for (let i = 0; i < 150; i++) s.logs.append("info", "proxy", `line ${i}`);
    const def = (await logs()).body.data.logs;
    expect(def).toHaveLength(100);
    expect(def.at(-1).message).toBe("line 149");
    expect(messages((await logs("?limit=2")).body)).toEqual(["line 148", "line 149"]);
    expect((await logs("?limit=1000")).res.status).toBe(200);
  });

  test.each([
    ["limit=0", "limit"],
    ["limit=1001", "limit"],
    ["limit=ten", "limit"],
    ["level=verbose", "level"],
    ["since=yesterday", "since"],
    [`q=${"x".repeat(201)}`, "q"],
    ["afterId=-1", "afterId"],
  ])("?%s is a 400 VALIDATION_ERROR naming %s", async (qs, field) => {
    const { res, body } = await logs(`?${qs}`);
    expect(res.status).toBe(400);
    expect(body.error.code).toBe("VALIDATION_ERROR");
    expect(body.error.details).toContain(field);
  });
});
