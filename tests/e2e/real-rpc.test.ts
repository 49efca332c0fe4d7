/**
 * A model split over two RPC workers with llama.cpp's real rpc-server and llama-server (the tiny
 * model): started with --rpc over both, a chat completion streamed through the proxy; one
 * rpc-server killed: the model's error, the worker's restart, the model's recovery. Runs when
 * LLAMA_SERVER_BIN, LLAMA_TEST_MODEL and LLAMA_RPC_SERVER_BIN are set (build-llama-server.sh
 * prints all three); skips with a message otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startWorker, type RunningWorker } from "../../src/rpc/worker";
import { startServer, type RunningServer } from "../../src/server";
import { waitFor } from "../helpers/services";

/** A port nobody listens on right now (the OS picks it), for rpc-server, which cannot take port 0. */
function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

const BIN = process.env.LLAMA_SERVER_BIN;
const MODEL = process.env.LLAMA_TEST_MODEL;
const RPC = process.env.LLAMA_RPC_SERVER_BIN;
const enabled = Boolean(BIN && MODEL && RPC);
if (!enabled) console.log("SKIP real-rpc: set LLAMA_SERVER_BIN, LLAMA_TEST_MODEL and LLAMA_RPC_SERVER_BIN (shared/tools/build-llama-server.sh prints them)");

const KEY = "worker-secret-1";

describe.skipIf(!enabled)("a model over two real rpc-servers", () => {
  let dir: string;
  let srv: RunningServer;
  const workers: RunningWorker[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "lap-realrpc-"));
    for (let i = 0; i < 2; i++) {
      const w = await startWorker({
        port: 0, host: "127.0.0.1", apiKey: KEY, quiet: true,
        rpc: { binary: RPC!, host: "127.0.0.1", port: freePort(), threads: 1, restartDelayMs: 200 },
      });
      workers.push(w);
      await w.rpc.whenRunning();
    }
    srv = await startServer({
      port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "error", environment: "test", quiet: true,
      databasePath: ":memory:",
      rpcWorkers: { checkIntervalMs: 200, checkTimeoutMs: 2000 },
    });
    srv.services.config.update({
      ...srv.services.config.get(),
      serverPath: BIN!, host: "127.0.0.1", port: 22000 + Math.floor(Math.random() * 8000), ctx_size: 256, batch_size: 64, threads: 1,
      // Every layer "on the GPU": the RPC devices are the only ones llama-server can offload to.
      gpu_layers: -1,
      maxRestarts: 0, stopTimeoutSeconds: 5, loadTimeoutSeconds: 60,
      rpcWorkers: workers.map((w, i) => ({ name: `w${i + 1}`, url: w.url, apiKey: KEY })),
    });
    const reg = await fetch(`${srv.url}/api/models`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ models: [{ id: "tiny", name: "tiny", path: MODEL, settings: { rpc: ["w1", "w2"], tensorSplit: [1, 1] } }] }),
    });
    expect(reg.status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await srv?.stop();
    await Promise.all(workers.map((w) => w.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  const chat = async (model = "tiny") => {
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
    const stream = await client.chat.completions.create({
      model, messages: [{ role: "user", content: "Say something." }], max_tokens: 8, temperature: 0, stream: true,
      stream_options: { include_usage: true }, ...({ ignore_eos: true } as object),
    });
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
    }
    return { usage, chunks };
  };

  test("starts with --rpc over both workers and streams a chat completion through the proxy", async () => {
    // The planner counts the devices the real rpc-servers reported (their start banners).
    await srv.services.rpcWorkers.checkAll();
    const fit = (await (await fetch(`${srv.url}/api/models/tiny/fit`)).json()).data;
    expect(fit.reason).toBe("fits over w1 + w2");
    expect(fit.rpcWorkers).toEqual([{ name: "w1", counted: true }, { name: "w2", counted: true }]);
    expect(fit.devices.filter((d: { kind: string }) => d.kind === "rpc").map((d: { worker: string }) => d.worker)).toEqual(["w1", "w2"]);
    // This host has no GPU, yet the layers go to the workers' devices: the estimate says so.
    const view = (await (await fetch(`${srv.url}/api/models/tiny`)).json()).data;
    expect(view.memory.breakdown.offloadedLayers).toBeGreaterThan(0);
    expect(view.memory.breakdown.gpuBytes).toBeGreaterThan(0);
    const t0 = performance.now();
    const started = await fetch(`${srv.url}/api/models/tiny/start`, { method: "POST", headers: { "content-type": "application/json" } });
    const body = await started.json();
    expect(started.status, JSON.stringify(body)).toBe(200);
    const loadMs = performance.now() - t0;
    const { usage, chunks } = await chat();
    console.log(`real rpc: loaded over 2 rpc-servers in ${Math.round(loadMs)} ms; streamed ${usage?.completion_tokens} tokens in ${chunks} chunks`);
    expect(usage?.completion_tokens).toBe(8);
    // Both rpc-servers really serve it: each holds a client connection (llama-server's), beyond
    // the worker's own readiness probe.
    for (const w of workers) {
      const st = w.rpc.status();
      expect([st.clientConnected, st.clientsAccepted >= 2], JSON.stringify(st)).toEqual([true, true]);
    }
    const listed = (await (await fetch(`${srv.url}/api/rpc-workers`)).json()).data.workers;
    expect(listed.map((w: { models: string[] }) => w.models)).toEqual([["tiny"], ["tiny"]]);
  }, 120_000);

  test("one rpc-server killed: the model goes to error, the worker restarts rpc-server, the model recovers", async () => {
    const before = srv.services.supervisor.runtimeOf("tiny")!;
    expect(before.state).toBe("running");
    process.kill(workers[1]!.rpc.status().pid!, "SIGKILL");
    const failed = await waitFor(() => {
      const rt = srv.services.supervisor.runtimeOf("tiny");
      return rt?.state === "error" ? rt : null;
    }, "the model to go to error", 20_000);
    expect(failed.error?.message ?? failed.statusDetail ?? "").toMatch(/RPC worker w2/);
    await waitFor(() => workers[1]!.rpc.status().state === "running" && workers[1]!.rpc.status().generation === 2, "the worker to restart rpc-server", 20_000);
    await waitFor(() => srv.services.supervisor.runtimeOf("tiny")?.state === "running", "the model to run again", 60_000);
    expect(srv.services.supervisor.runtimeOf("tiny")!.pid).not.toBe(before.pid);
    const { usage } = await chat();
    expect(usage?.completion_tokens).toBe(8);
  }, 120_000);

  test("a second model over one of the same workers: the first is stopped (rpc-server serves one client at a time), the second answers", async () => {
    // Room for several models: only the worker being taken decides.
    srv.services.config.update({ ...srv.services.config.get(), maxLoadedModels: 4 });
    // The same model under a second id (a path is registered once: a link to it).
    const link = join(dir, "tiny2.gguf");
    symlinkSync(MODEL!, link);
    const reg = await fetch(`${srv.url}/api/models`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ models: [{ id: "tiny2", name: "tiny2", path: link, settings: { rpc: ["w1"] } }] }),
    });
    expect(reg.status, await reg.clone().text()).toBe(200);
    expect(srv.services.supervisor.runtimeOf("tiny")?.state).toBe("running");
    const fit = (await (await fetch(`${srv.url}/api/models/tiny2/fit`)).json()).data;
    expect(fit).toMatchObject({ fits: true, evict: ["tiny"], reason: "fits over w1 after stopping tiny" });
    const { usage } = await chat("tiny2");
    expect(usage?.completion_tokens).toBe(8);
    expect(srv.services.supervisor.runtimeOf("tiny")?.state ?? "stopped").toBe("stopped");
    expect(srv.services.supervisor.runtimeOf("tiny2")?.state).toBe("running");
  }, 120_000);
});
