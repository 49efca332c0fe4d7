/**
 * Multi-GPU placement with a fake nvidia-smi on PATH (tests/fixtures/bin/nvidia-smi: the real H200
 * report, with the GPUs and memory FAKE_SMI_GPUS sets) and the fake llama-server: the chosen
 * device, the split and the evictions, read from each child's argv and environment (/proc).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { llamaModel, writeGguf, type LlamaShape } from "../fixtures/gguf-writer";
import { makeHarness, type Harness } from "../fixtures/supervisor-harness";

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
