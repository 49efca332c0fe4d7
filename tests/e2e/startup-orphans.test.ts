/**
 * Start-up order with a predecessor's orphan (a llama-server a kill -9'd proxy left running,
 * listed in its pidfile): the new server listens at once, while the orphan is still inside its
 * stop grace period, and a model load waits until the orphan is gone (it holds a port and memory).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type RunningServer } from "../../src/server";
import { readCmdline, readStartTime } from "../../src/supervisor/pidfile";
import { writeModel } from "../fixtures/gguf-writer";
import { FAKE_SERVER, isAlive, randomBasePort, waitFor } from "../fixtures/supervisor-harness";

const dir = mkdtempSync(join(tmpdir(), "lap-startup-orphan-"));
let running: RunningServer | undefined;
let orphan: ReturnType<typeof Bun.spawn> | undefined;
afterAll(async () => {
  await running?.stop();
  orphan?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

test("the server listens before a predecessor's orphan is stopped; a model load waits for it", async () => {
  const GRACE_S = 2;
  const basePort = randomBasePort();
  const configPath = join(dir, "llama-server-config.json");
  writeFileSync(configPath, JSON.stringify({ host: "127.0.0.1", port: basePort, basePath: join(dir, "none"), serverPath: FAKE_SERVER, ctx_size: 512, batch_size: 64, threads: -1, gpu_layers: 0, stopTimeoutSeconds: GRACE_S }));
  const modelPath = join(dir, "tiny.gguf");
  writeModel(modelPath, { arch: "llama", name: "tiny", fileType: 15, contextLength: 512 });

  // The orphan: a llama-server that ignores SIGTERM, so stopping it takes the whole grace period.
  const orphanPort = basePort + 500;
  orphan = Bun.spawn(["bun", FAKE_SERVER, "-m", modelPath, "--port", String(orphanPort), "--fake-ignore-sigterm", "--fake-load-ms", "0"], { stdout: "ignore", stderr: "ignore" });
  await waitFor(() => fetch(`http://127.0.0.1:${orphanPort}/health`).then((r) => r.status === 200, () => false), "the orphan to answer");
  // Its pidfile entry, as its proxy wrote it before dying (the owner is a process that has exited).
  const deadOwner = Bun.spawn(["true"]);
  await deadOwner.exited;
  writeFileSync(join(dir, "llama-servers.json"), JSON.stringify({
    owner: { pid: deadOwner.pid, startTime: 1 },
    children: [{ pid: orphan.pid, startTime: readStartTime(orphan.pid), modelId: "tiny", port: orphanPort, command: readCmdline(orphan.pid), startedAt: new Date().toISOString() }],
  }));

  const t0 = performance.now();
  running = await startServer({ port: 0, host: "127.0.0.1", dataDir: dir, configPath, logLevel: "error", environment: "test", quiet: true, databasePath: join(dir, "db.sqlite") });
  const health = await fetch(`${running.url}/api/health`);
  expect(health.status).toBeLessThan(600);
  await health.arrayBuffer();
  // Up and answering while the orphan is still in its grace period.
  expect(performance.now() - t0).toBeLessThan(GRACE_S * 1000);
  expect(isAlive(orphan.pid)).toBe(true);

  const post = (path: string, body?: unknown) =>
    fetch(`${running!.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}) });
  expect((await post("/api/models", { models: [{ name: "tiny", path: modelPath }] })).status).toBeLessThan(300);
  const start = await post("/api/models/tiny/start");
  expect(start.status).toBe(200);
  await start.arrayBuffer();
  // The load began only once the orphan was gone.
  expect(isAlive(orphan.pid)).toBe(false);
  expect(running.services.logs.query({ q: "Stopping orphaned llama-server of tiny" })).toHaveLength(1);
}, 30_000);
