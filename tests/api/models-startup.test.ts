import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type RunningServer } from "../../src/server";
import { writeModel } from "../fixtures/gguf-writer";
import { waitFor } from "../helpers/services";

let running: RunningServer | undefined;
let dir: string | undefined;

afterEach(async () => {
  await running?.stop();
  running = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Polls until `check` returns a value or the deadline passes (no fixed sleeps). */

function setup(basePath: (d: string) => string) {
  dir = realpathSync(mkdtempSync(join(tmpdir(), "models-startup-")));
  const models = join(dir, "models");
  mkdirSync(models);
  writeModel(join(models, "Qwen3-0.6B-Q8_0.gguf"), { arch: "qwen3", name: "Qwen3 0.6B", fileType: 7, contextLength: 40960, size: 639_447_744 });
  writeFileSync(join(dir, "config.json"), JSON.stringify({ basePath: basePath(dir) }));
  return { dir, models };
}

test("the server scans config.basePath once in the background at startup, and logs it", async () => {
  const { dir: d, models } = setup((d) => join(d, "models"));
  running = await startServer({ port: 0, host: "127.0.0.1", dataDir: d, configPath: join(d, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: join(d, "db.sqlite") });
  const model = await waitFor(async () => {
    const body = (await (await fetch(`${running!.url}/api/models`)).json()) as any;
    return body.data.count > 0 ? body.data.models[0] : undefined;
  }, "the startup scan to register the model");
  expect(model).toMatchObject({ id: "qwen3-0.6b-q8_0", status: "discovered", path: join(models, "Qwen3-0.6B-Q8_0.gguf"), family: "qwen3", quantization: "Q8_0", contextSize: 40960 });
  const line = await waitFor(async () => findLog(running!, "Startup scan"), "the scan's log line");
  expect(line).toContain("1 model(s), 1 new");
});

test("a missing basePath does not stop startup; it is logged and nothing is registered", async () => {
  const { dir: d } = setup((d) => join(d, "no-such-folder"));
  running = await startServer({ port: 0, host: "127.0.0.1", dataDir: d, configPath: join(d, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" });
  const line = await waitFor(async () => findLog(running!, "Model folder"), "the skip to be logged");
  expect(line).toBe(`Model folder ${join(d, "no-such-folder")} not found; skipping the startup scan`);
  const body = (await (await fetch(`${running.url}/api/models`)).json()) as any;
  expect(body.data.count).toBe(0);
});

// stop() must never close the database under a scan that is still running.
test("stopping right after start aborts the scan without writing to a closed database", async () => {
  const { dir: d } = setup((d) => join(d, "models"));
  running = await startServer({ port: 0, host: "127.0.0.1", dataDir: d, configPath: join(d, "config.json"), logLevel: "error", environment: "test", quiet: true, databasePath: join(d, "db.sqlite") });
  const errors: string[] = [];
  running.services.bus.on("log", (e) => {
    if (e.level === "error" || e.level === "warn") errors.push(e.message);
  });
  await running.stop();
  running = undefined;
  expect(errors).toEqual([]);
});

function findLog(r: RunningServer, prefix: string): string | undefined {
  return r.services.logs.all().find((e) => e.message.startsWith(prefix))?.message;
}
