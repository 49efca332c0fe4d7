import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startServer, type RunningServer } from "../../src/server";
import { killAndWait, startListening } from "../helpers/process";
import { waitFor } from "../helpers/services";

// Hot reload end to end: the real proxy watching its real config file, the fake llama-server as
// real processes. The test edits the file the way a person would (plain write, no API).
const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");
const MAIN = resolve(import.meta.dir, "../../src/main.ts");
let dir: string;
let configPath: string;
let srv: RunningServer;

const readFile = () => JSON.parse(readFileSync(configPath, "utf8"));
const writeFile = (cfg: unknown) => writeFileSync(configPath, typeof cfg === "string" ? cfg : JSON.stringify(cfg, null, 2));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lap-reload-"));
  configPath = join(dir, "llama-server-config.json");
  srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: dir, configPath, logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" });
  srv.services.config.update({ ...srv.services.config.get(), serverPath: FAKE, host: "127.0.0.1", port: 20000 + Math.floor(Math.random() * 20000), stopTimeoutSeconds: 2, maxRestarts: 0, maxLoadedModels: 2, ctx_size: 1024 });
  for (const id of ["edited", "other"]) {
    const path = join(dir, `${id}.gguf`);
    writeFileSync(path, "GGUF fake weights");
    srv.services.registry.insert([{ id, name: id, path, size: 17, family: "llama", format: "gguf", settings: {} }]);
  }
});
afterAll(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("editing the file: limits at once, a model's new context restarts only that model, an invalid file keeps the running config", async () => {
  await srv.services.pool.start("edited");
  await srv.services.pool.start("other");
  const rt = (id: string) => srv.services.supervisor.runtimeOf(id)!;
  expect(rt("edited").contextSize).toBe(1024);
  const otherPid = rt("other").pid;
  const editedPid = rt("edited").pid;

  // A limit and the context of one model, edited in the file.
  writeFile({ ...readFile(), maxQueuedRequests: 7, models: { edited: { ctxSize: 4096 } } });
  await waitFor(() => srv.services.config.get().maxQueuedRequests === 7, "the new limit in effect");
  await waitFor(() => rt("edited").state === "running" && rt("edited").pid !== editedPid && rt("edited").contextSize === 4096, "edited restarted with ctx 4096");
  expect(srv.services.registry.get("edited")!.settings.ctxSize).toBe(4096);
  // The other model was not touched.
  expect(rt("other").pid).toBe(otherPid);
  // Saving through the API keeps the file's models section.
  srv.services.config.update({ ...srv.services.config.get(), maxQueuedRequests: 8 });
  expect(readFile().models).toEqual({ edited: { ctxSize: 4096 } });

  // An invalid edit: the running configuration stays, /api/health says why.
  writeFile({ ...readFile(), maxQueuedRequests: "lots" });
  const health = await waitFor(async () => {
    const res = await fetch(`${srv.url}/api/health`);
    const body = await res.json();
    return JSON.stringify(body).includes("Keeping the running configuration") ? body : null;
  }, "the error in /api/health");
  expect(JSON.stringify(health)).toContain("maxQueuedRequests");
  expect(srv.services.config.get().maxQueuedRequests).toBe(8);
  writeFile("{ not json");
  await waitFor(() => srv.services.config.loadError?.includes("not valid JSON"), "the JSON error");
  expect(rt("other").pid).toBe(otherPid);

  // Fixed again: the error goes away.
  writeFile({ ...JSON.parse(JSON.stringify(srv.services.config.get())), models: { edited: { ctxSize: 4096 } } });
  await waitFor(() => srv.services.config.loadError === null, "the error cleared");
});

test("POST /api/models/:id/restart restarts now; unknown models are 404", async () => {
  const before = srv.services.supervisor.runtimeOf("other")!.pid;
  const res = await fetch(`${srv.url}/api/models/other/restart`, { method: "POST", headers: { "content-type": "application/json" } });
  expect(res.status).toBe(200);
  const body = await res.json();
  expect(body.data.status).toBe("running");
  expect(srv.services.supervisor.runtimeOf("other")!.pid).not.toBe(before);
  const missing = await fetch(`${srv.url}/api/models/nope/restart`, { method: "POST", headers: { "content-type": "application/json" } });
  expect(missing.status).toBe(404);
});

test("SIGHUP re-reads the file and does not stop the process", async () => {
  const sub = join(dir, "proc");
  const { proc, url, stderr } = await startListening([process.execPath, MAIN, "--port", "0", "--data-dir", sub, "--log-level", "info"], { cwd: dir });
  try {
    proc.kill("SIGHUP");
    await stderr.wait(/Received SIGHUP, reloading the configuration file/);
    expect((await fetch(`${url}/api/health`)).status).toBeLessThan(600);
    expect(proc.exitCode).toBeNull();
  } finally {
    await killAndWait(proc);
  }
});
