/**
 * Multi-GPU placement with a fake nvidia-smi on PATH (tests/fixtures/bin/nvidia-smi: the real H200
 * report, with the GPUs and memory FAKE_SMI_GPUS sets) and the fake llama-server: the chosen
 * device, the split and the evictions, read from each child's argv and environment (/proc).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { llamaModel, writeGguf, type LlamaShape } from "../fixtures/gguf-writer";
import { createApp } from "../../src/app";
import { startWorker, type RunningWorker } from "../../src/rpc/worker";
import { makeHarness, waitFor, type Harness } from "../fixtures/supervisor-harness";

const BIN = resolve(import.meta.dir, "../fixtures/bin");
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
let savedPath: string | undefined;
let savedGpus: string | undefined;

beforeAll(() => {
  savedPath = process.env.PATH;
  savedGpus = process.env.FAKE_SMI_GPUS;
  process.env.PATH = `${BIN}:${process.env.PATH}`;
  // GPU 0: 100 GB of its 140 used by another program; GPU 1: 20 GB used.
  process.env.FAKE_SMI_GPUS = "143771:100000,143771:20000";
});
afterAll(() => {
  process.env.PATH = savedPath;
  if (savedGpus === undefined) delete process.env.FAKE_SMI_GPUS;
  else process.env.FAKE_SMI_GPUS = savedGpus;
});

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** f16, 8192 wide: 1.25 GiB per layer. */
const wide = (layers: number): LlamaShape => ({ layers, embd: 8192, heads: 64, kvHeads: 64, f16: true });

function add(harness: Harness, id: string, shape: LlamaShape) {
  const path = join(harness.dir, `${id}.gguf`);
  writeGguf(path, llamaModel(shape));
  harness.services.registry.insert([{ id, name: id, path, size: 1 }]);
  // The fake llama-server reports what the estimate says (a real one would report its buffers).
  const need = harness.services.memory.estimate(harness.services.registry.get(id)!)!;
  harness.services.registry.update(id, { settings: { extraArgs: ["--fake-memory-mib", `${Math.round(need.weightsBytes / MiB)},${Math.round(need.kvBytes / MiB)},${Math.round(need.computeBytes / MiB)}`] } });
  return need;
}

/** The child's argv and environment, as the kernel has them. */
function child(harness: Harness, id: string) {
  const pid = harness.supervisor.runtimeOf(id)!.pid!;
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  const env = Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  const flag = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  return { argv, env, flag };
}

const state = (id: string) => h!.supervisor.runtimeOf(id)?.state ?? "stopped";

describe("placement on several GPUs", () => {
  test("one GPU when one has room: the one with the most; a split when none has; eviction when the GPUs are full", async () => {
    h = await makeHarness({ config: { maxLoadedModels: 0, ctx_size: 512 } });
    await h.services.memory.refreshDevices();
    const devices = h.services.memory.devicesNow(new Set(), 0)!;
    expect(devices.map((d) => [d.id, Math.round(d.capacityBytes / MiB)])).toEqual([
      ["host", expect.any(Number)],
      ["gpu0", 143771 - 100000 - 1024],
      ["gpu1", 143771 - 20000 - 1024],
    ]);

    // ~50 GiB: fits on GPU 1 alone (120 GiB free), not on GPU 0 (42 GiB).
    const medium = add(h, "medium", wide(40));
    expect(medium.gpuBytes).toBeGreaterThan(45 * GiB);
    await h.services.pool.start("medium");
    const m = child(h, "medium");
    expect(m.env.CUDA_VISIBLE_DEVICES).toBe("1");
    expect(m.env.CUDA_DEVICE_ORDER).toBe("PCI_BUS_ID");
    expect(m.flag("--fit")).toBe("off");
    expect(m.argv).not.toContain("--tensor-split");
    expect(h.supervisor.runtimeOf("medium")!.placement!.gpus).toEqual([1]);

    // ~140 GiB: no GPU has that; with medium gone, GPU 1 + GPU 0 have 162 GiB. Medium is evicted
    // and big is split over GPU 1 (main, most room) and GPU 0, layers in proportion to the room.
    const big = add(h, "big", wide(110));
    expect(big.gpuBytes).toBeGreaterThan(125 * GiB);
    await h.services.pool.start("big");
    expect(state("medium")).toBe("stopped");
    const b = child(h, "big");
    expect(b.env.CUDA_VISIBLE_DEVICES).toBe("1,0");
    const split = b.flag("--tensor-split")!.split(",").map(Number);
    expect(split).toHaveLength(2);
    expect(split[0]! + split[1]!).toBe(110);
    expect(split[0]!).toBeGreaterThan(split[1]!);
    const placement = h.supervisor.runtimeOf("big")!.placement!;
    expect(placement.gpus).toEqual([1, 0]);
    expect(placement.tensorSplit).toEqual(split);
    // And the API shows it.
    const { createApp } = await import("../../src/app");
    const res = await createApp(h.services).request("/api/models/big");
    const body = (await res.json()) as any;
    expect(body.data.placement.gpus).toEqual([1, 0]);
    expect(body.data.placement.devices.map((d: { id: string }) => d.id)).toEqual(["gpu1", "gpu0", "host"]);

    // Medium again: no room beside big on either GPU, so big goes.
    await h.services.pool.start("medium");
    expect(state("big")).toBe("stopped");
    expect(child(h, "medium").env.CUDA_VISIBLE_DEVICES).toBe("1");
  }, 30_000);

  test("a model too big for every GPU together is refused with the GPU numbers", async () => {
    h = await makeHarness({ config: { maxLoadedModels: 0, ctx_size: 512 } });
    add(h, "huge", wide(160));
    const err = await h.services.pool.start("huge").catch((e) => e);
    expect(String(err.message)).toMatch(/does not fit: needs \d+ MiB of GPU memory, at most \d+ MiB available on 2 GPUs/);
    expect(state("huge")).toBe("stopped");
  });
});

describe("placement over RPC workers (a worker with the fake rpc-server reporting an 80 GB GPU)", () => {
  const FAKE_RPC = resolve(import.meta.dir, "../fixtures/fake-rpc-server.ts");
  const KEY = "worker-secret-1";
  let worker: RunningWorker | undefined;
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
  });

  test("/fit counts the worker's device for a model with rpc, says where it lands, and says when the worker adds nothing", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const rpcPort = probe.port;
    probe.stop(true);
    worker = await startWorker({
      port: 0, host: "127.0.0.1", apiKey: KEY, quiet: true,
      rpc: { binary: FAKE_RPC, host: "127.0.0.1", port: rpcPort, env: { FAKE_RPC_DEVICES: "CUDA0:NVIDIA Fake 80G:81920:80000" } },
    });
    await worker.rpc.whenRunning();
    await waitFor(() => worker!.rpc.status().devices.length === 1, "the worker's device list");
    h = await makeHarness({ config: { maxLoadedModels: 0, ctx_size: 512 } });
    h.services.config.update({ ...h.services.config.get(), rpcWorkers: [{ name: "w1", url: worker.url, apiKey: KEY }] });
    await h.services.rpcWorkers.checkAll();
    // ~200 GiB of layers: more than both local GPUs have (42 + 122 GiB free), less than they have with w1's 78.
    add(h, "huge", wide(160));
    const app = createApp(h.services);
    const fit = async (id: string) => ((await (await app.request(`/api/models/${id}/fit`)).json()) as any).data;

    const local = await fit("huge");
    expect(local.fits).toBe(false);
    expect(local.reason).toMatch(/needs \d+ MiB of GPU memory, at most \d+ MiB available on 2 GPUs/);

    h.services.registry.update("huge", { settings: { ...h.services.registry.get("huge")!.settings, rpc: ["w1"] } });
    const over = await fit("huge");
    expect(over.fits, over.reason).toBe(true);
    expect(over.reason).toBe("fits over w1 + local GPU 0 + local GPU 1");
    expect(over.where).toBe("w1 + local GPU 0 + local GPU 1");
    expect(over.rpcWorkers).toEqual([{ name: "w1", counted: true }]);
    expect(over.placement.workers).toEqual(["w1"]);
    const remote = over.devices.find((d: { id: string }) => d.id === "rpc:w1/CUDA0");
    expect(remote).toMatchObject({ kind: "rpc", worker: "w1", capacityBytes: (80000 - 1024) * MiB });
    // Split by free memory, as llama-server will: every device takes its share, none is over.
    for (const d of over.devices.filter((x: { kind: string }) => x.kind !== "host")) {
      expect(d.needBytes).toBeGreaterThan(0);
      expect(d.needBytes).toBeLessThanOrEqual(d.freeBytes);
    }
    // The console's hint says the same.
    const hint = await (await app.request("/ui/models/huge/fit")).text();
    expect(hint).toContain("fits over w1 + local GPU 0 + local GPU 1");

    // Started for real: --rpc to the worker's rpc-server, every local GPU visible, the placement kept.
    await h.services.pool.start("huge");
    const c = child(h, "huge");
    expect(c.flag("--rpc")).toBe(`127.0.0.1:${rpcPort}`);
    expect(c.env.CUDA_VISIBLE_DEVICES).toBe("0,1");
    expect(c.argv).not.toContain("--tensor-split");
    expect(h.supervisor.runtimeOf("huge")!.placement!.workers).toEqual(["w1"]);
    const page = await (await app.request("/models")).text();
    expect(page).toContain("over w1 + GPU 0+1");
    await h.services.pool.stop("huge");

    // The worker goes away: it contributes nothing, and the answer says why.
    await worker.stop();
    worker = undefined;
    await h.services.rpcWorkers.checkAll();
    const down = await fit("huge");
    expect(down.fits).toBe(false);
    expect(down.reason).toMatch(/at most \d+ MiB available on local GPU 0 \+ local GPU 1; w1 contributes nothing: down \(/);
    expect(down.rpcWorkers).toEqual([{ name: "w1", counted: false, reason: expect.stringMatching(/^down \(/) }]);
    expect(down.devices.some((d: { kind: string }) => d.kind === "rpc")).toBe(false);
  }, 30_000);
});
