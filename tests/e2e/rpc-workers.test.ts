import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { UsageError } from "../../src/cli";
import { parseWorkerCli } from "../../src/rpc/cli";
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

// `worker` mode and models split over RPC workers, with llama.cpp's rpc-server (fake one here;
// tests/e2e/real-rpc.test.ts runs the real one) and the fake llama-server (which accepts --rpc).
const FAKE_LLAMA = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");
const FAKE_RPC = resolve(import.meta.dir, "../fixtures/fake-rpc-server.ts");
const KEY = "worker-secret-1";

let dir: string;
let workers: RunningWorker[] = [];
let srv: RunningServer | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lap-rpc-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await srv?.stop();
  srv = undefined;
  await Promise.all(workers.map((w) => w.stop()));
  workers = [];
});

async function worker(devices?: string): Promise<RunningWorker> {
  const w = await startWorker({
    port: 0, host: "127.0.0.1", apiKey: KEY, quiet: true,
    rpc: { binary: FAKE_RPC, host: "127.0.0.1", port: freePort(), restartDelayMs: 100, ...(devices ? { env: { FAKE_RPC_DEVICES: devices } } : {}) },
  });
  workers.push(w);
  await w.rpc.whenRunning();
  return w;
}

async function main(ws: RunningWorker[], modelSettings: Record<string, unknown>): Promise<RunningServer> {
  const sub = join(dir, `main${Math.random().toString(36).slice(2)}`);
  srv = await startServer({
    port: 0, host: "127.0.0.1", dataDir: sub, configPath: join(sub, "config.json"), logLevel: process.env.DEBUG_RPC ? "debug" : "error", environment: "test", quiet: !process.env.DEBUG_RPC,
    databasePath: ":memory:",
    rpcWorkers: { checkIntervalMs: 100, checkTimeoutMs: 1000 },
  });
  srv.services.config.update({
    ...srv.services.config.get(),
    serverPath: FAKE_LLAMA, host: "127.0.0.1", port: 20000 + Math.floor(Math.random() * 20000), stopTimeoutSeconds: 2, maxRestarts: 0,
    rpcWorkers: ws.map((w, i) => ({ name: `w${i + 1}`, url: w.url, apiKey: KEY })),
  });
  const path = join(sub, "big.gguf");
  writeFileSync(path, "GGUF fake weights");
  srv.services.registry.insert([{ id: "big", name: "big", path, size: 17, family: "llama", format: "gguf", settings: modelSettings }]);
  return srv;
}

const startModel = (s: RunningServer) => fetch(`${s.url}/api/models/big/start`, { method: "POST", headers: { "content-type": "application/json" } });
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");

describe("worker mode", () => {
  test("supervises rpc-server, reports its devices behind the API key, restarts it when it dies", async () => {
    const w = await worker("CUDA0:NVIDIA Fake 24G:24000:23000,CUDA1:NVIDIA Fake 24G:24000:22000");
    expect((await fetch(`${w.url}/api/worker`)).status).toBe(401);
    const auth = { headers: { authorization: `Bearer ${KEY}` } };
    const first = await waitFor(async () => {
      const d = (await (await fetch(`${w.url}/api/worker`, auth)).json()).data;
      return d.devices.length === 2 ? d : null;
    }, "the device list");
    expect(first).toMatchObject({ state: "running", generation: 1, restarts: 0 });
    expect(first.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(first.devices[1]).toEqual({ name: "CUDA1", description: "NVIDIA Fake 24G", totalMiB: 24000, freeMiB: 22000 });
    process.kill(first.pid, "SIGKILL");
    const again = await waitFor(async () => {
      const d = (await (await fetch(`${w.url}/api/worker`, auth)).json()).data;
      return d.state === "running" && d.generation === 2 ? d : null;
    }, "rpc-server to be restarted");
    expect(again.pid).not.toBe(first.pid);
    expect(again.restarts).toBe(1);
    expect(again.lastExit.signal).toBe("SIGKILL");
  }, 20_000);

  test("the worker command line refuses a public or wildcard rpc-server address and a missing key", () => {
    expect(() => parseWorkerCli(["--rpc-host", "127.0.0.1"], {})).toThrow(UsageError);
    expect(() => parseWorkerCli(["--api-key", KEY, "--rpc-host", "0.0.0.0"], {})).toThrow(/binds every interface/);
    expect(() => parseWorkerCli(["--api-key", KEY, "--rpc-host", "8.8.8.8"], {})).toThrow(/not a loopback or private/);
    const forced = parseWorkerCli(["--api-key", KEY, "--rpc-host", "0.0.0.0", "--allow-public-rpc"], {});
    expect(forced.kind === "worker" && forced.options.rpc.host).toBe("0.0.0.0");
    const ok = parseWorkerCli(["--api-key", KEY, "--rpc-host", "192.168.1.20", "--rpc-port", "50100", "--device", "CUDA0,CUDA1", "--cache"], { LLAMA_RPC_SERVER_BIN: "/opt/rpc-server" });
    expect(ok).toMatchObject({ kind: "worker", options: { apiKey: KEY, port: 3100, rpc: { binary: "/opt/rpc-server", host: "192.168.1.20", port: 50100, devices: ["CUDA0", "CUDA1"], cache: true } } });
  });
});

describe("a model split over RPC workers", () => {
  test("starts with --rpc over both workers and --tensor-split, and answers through the proxy", async () => {
    const w1 = await worker();
    const w2 = await worker();
    const s = await main([w1, w2], { rpc: ["w1", "w2"], tensorSplit: [1, 1, 2] });
    const res = await startModel(s);
    expect(res.status).toBe(200);
    const rt = s.services.supervisor.runtimeOf("big")!;
    const argv = cmdline(rt.pid!);
    expect(argv[argv.indexOf("--rpc") + 1]).toBe(`${w1.rpc.endpoint},${w2.rpc.endpoint}`);
    expect(argv[argv.indexOf("--tensor-split") + 1]).toBe("1,1,2");
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: "big", messages: [{ role: "user", content: "hi" }], max_tokens: 4, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    const listed = (await (await fetch(`${s.url}/api/rpc-workers`)).json()).data.workers;
    expect(listed.map((w: { name: string; state: string; rpcState: string; models: string[] }) => [w.name, w.state, w.rpcState, w.models])).toEqual([
      ["w1", "up", "running", ["big"]],
      ["w2", "up", "running", ["big"]],
    ]);
    expect(await (await fetch(`${s.url}/metrics`)).text()).toContain('llamaproxy_rpc_worker_up{worker="w2"} 1');
  }, 30_000);

  test("rpc-server serves one client at a time: a second model over the same worker stops the first", async () => {
    const w1 = await worker();
    const s = await main([w1], { rpc: ["w1"] });
    s.services.config.update({ ...s.services.config.get(), maxLoadedModels: 4 }); // only the worker decides
    const path = join(dir, `other${Math.random().toString(36).slice(2)}.gguf`);
    writeFileSync(path, "GGUF fake weights");
    s.services.registry.insert([{ id: "other", name: "other", path, size: 17, family: "llama", format: "gguf", settings: { rpc: ["w1"] } }]);
    expect((await startModel(s)).status).toBe(200);
    expect(s.services.supervisor.runtimeOf("big")!.placement!.workers).toEqual(["w1"]);
    const res = await fetch(`${s.url}/api/models/other/start`, { method: "POST", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    expect(s.services.supervisor.runtimeOf("other")?.state).toBe("running");
    expect(s.services.supervisor.runtimeOf("big")?.state ?? "stopped").toBe("stopped");
    expect(s.services.logs.query({ q: "to make room for other" }).at(-1)?.message).toContain("RPC worker w1 serves one model at a time (big runs over it)");
  }, 30_000);

  test("a worker that is down makes the start fail with that reason", async () => {
    const w1 = await worker();
    const w2 = await worker();
    const s = await main([w1, w2], { rpc: "all" });
    await w2.stop();
    const res = await startModel(s);
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body.error.message).toContain("RPC worker w2 is down");
    expect(s.services.supervisor.runtimeOf("big")?.state).toBe("error");
    expect(s.services.supervisor.runtimeOf("big")?.error?.message).toContain("RPC worker w2 is down");
  }, 30_000);

  test("a worker's rpc-server that dies puts the model in error; it runs again once the worker restarted it", async () => {
    const w1 = await worker();
    const w2 = await worker();
    const s = await main([w1, w2], { rpc: ["w1", "w2"] });
    expect((await startModel(s)).status).toBe(200);
    const firstPid = s.services.supervisor.runtimeOf("big")!.pid!;
    process.kill(w2.rpc.status().pid!, "SIGKILL");
    const failed = await waitFor(() => {
      const rt = s.services.supervisor.runtimeOf("big");
      return rt?.state === "error" ? rt : null;
    }, "the model to go to error");
    expect(failed.error!.message).toMatch(/RPC worker w2/);
    await waitFor(() => s.services.supervisor.runtimeOf("big")?.state === "running", "the model to run again", 15_000);
    const rt = s.services.supervisor.runtimeOf("big")!;
    expect(rt.pid).not.toBe(firstPid);
    expect(w2.rpc.status().generation).toBe(2);
    const ok = await fetch(`${s.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "big", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }) });
    expect(ok.status).toBe(200);
  }, 30_000);
});
