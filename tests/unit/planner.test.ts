import { describe, expect, test } from "bun:test";
import { place, placementLabel, placementLaunch, planStart, splitOverRpc, type DeviceBudget, type ModelNeed, type Occupant, type PlanInput, type RpcTarget } from "../../src/supervisor/planner";

const G = 1024 ** 3;
const host = (gb: number): DeviceBudget => ({ id: "host", kind: "host", capacityBytes: gb * G });
const gpu = (i: number, gb: number): DeviceBudget => ({ id: `gpu${i}`, kind: "gpu", index: i, capacityBytes: gb * G });

/** A model needing `gpuGb` on GPUs in 10 equal layers (+ nothing fixed) and `hostGb` on the host. */
const need = (gpuGb: number, hostGb = 0.5): ModelNeed => ({ gpuBytes: gpuGb * G, hostBytes: hostGb * G, gpuLayerBytes: new Array(10).fill((gpuGb * G) / 10) });
const hostNeed = (gb: number): ModelNeed => ({ gpuBytes: 0, hostBytes: gb * G, gpuLayerBytes: [] });

let clock = 0;
function occ(id: string, devices: Record<string, number>, o: Partial<Occupant> = {}): Occupant {
  return {
    id, state: "running", inFlight: 0, queued: 0, lastUsed: ++clock, pinned: false, draining: false,
    placement: { devices: Object.entries(devices).map(([d, gb]) => ({ id: d, bytes: gb * G })), gpus: [] },
    ...o,
  };
}

function input(devices: DeviceBudget[], occupants: Occupant[], n: ModelNeed, o: Partial<PlanInput> & { partial?: boolean } = {}): PlanInput {
  return { devices, occupants, target: { id: "new", need: n, allowPartialOffload: o.partial ?? false }, maxLoadedModels: o.maxLoadedModels ?? 0 };
}

describe("planStart: one device (host only)", () => {
  const cases: [string, PlanInput, unknown][] = [
    ["fits beside what runs: start on the host", input([host(16)], [occ("a", { host: 8 })], hostNeed(6)), { action: "start", placement: { devices: [{ id: "host", bytes: 6 * G }], gpus: [] } }],
    ["does not fit: the least recently used idle model is stopped", input([host(16)], [occ("old", { host: 6 }), occ("recent", { host: 6 })], hostNeed(6)), { action: "stop", models: ["old"] }],
    ["needs two gone: both stopped, oldest first", input([host(16)], [occ("a", { host: 6 }), occ("b", { host: 6 }), occ("c", { host: 2 })], hostNeed(12)), { action: "stop", models: ["a", "b"] }],
    ["a busy model is not stopped; an idle one after it is", input([host(16)], [occ("busy", { host: 8 }, { inFlight: 1 }), occ("idle", { host: 8 })], hostNeed(8)), { action: "stop", models: ["idle"] }],
    ["only busy ones can make room: drain the least recently used", input([host(16)], [occ("b1", { host: 8 }, { inFlight: 2 }), occ("b2", { host: 8 }, { queued: 1 })], hostNeed(8)), { action: "drain", models: ["b1"] }],
    ["a drained model that is still busy: wait", input([host(16)], [occ("b1", { host: 8 }, { inFlight: 1, draining: true }), occ("b2", { host: 8 }, { inFlight: 1 })], hostNeed(8)), { action: "wait" }],
    ["a drained model whose queue waits for this swap counts as idle", input([host(16)], [occ("d", { host: 12 }, { queued: 3, draining: true })], hostNeed(8)), { action: "stop", models: ["d"] }],
    ["a crashed model waiting for its restart goes first", input([host(16)], [occ("idle", { host: 8 }), occ("crashed", { host: 8 }, { state: "restarting" })], hostNeed(8)), { action: "stop", models: ["crashed"] }],
    ["a stopping model keeps its memory until it is gone: wait", input([host(16)], [occ("s", { host: 12 }, { state: "stopping" })], hostNeed(8)), { action: "wait" }],
    ["a loading model is never evicted: wait for it", input([host(16)], [occ("l", { host: 12 }, { state: "loading" })], hostNeed(8)), { action: "wait" }],
    ["pinned is never evicted: refuse with the numbers", input([host(16)], [occ("p", { host: 12 }, { pinned: true })], hostNeed(8)), { action: "refuse", needBytes: 8 * G, freeBytes: 4 * G }],
    ["can never fit: refuse", input([host(16)], [], hostNeed(20)), { action: "refuse", needBytes: 20 * G, freeBytes: 16 * G }],
  ];
  test.each(cases)("%s", (_l, inp, expected) => {
    expect(planStart(inp)).toMatchObject(expected as object);
  });

  test("the refusal says what it needs and what there is", () => {
    const d = planStart(input([host(16)], [occ("p", { host: 12 }, { pinned: true })], hostNeed(8)));
    expect(d.action === "refuse" && d.reason).toBe("needs 8192 MiB of memory, at most 4096 MiB available (pinned models p keep their memory)");
  });
});

describe("planStart: maxLoadedModels is an extra cap", () => {
  test.each([
    ["room in memory but the cap is reached: the LRU goes", input([host(64)], [occ("a", { host: 1 }), occ("b", { host: 1 })], hostNeed(1), { maxLoadedModels: 2 }), { action: "stop", models: ["a"] }],
    ["0 = memory only", input([host(64)], [occ("a", { host: 1 }), occ("b", { host: 1 })], hostNeed(1), { maxLoadedModels: 0 }), { action: "start" }],
    ["the cap reached by pinned models: refuse", input([host(64)], [occ("p", { host: 1 }, { pinned: true })], hostNeed(1), { maxLoadedModels: 1 }), { action: "refuse" }],
    ["the model itself does not count against the cap (it restarts)", { ...input([host(64)], [occ("new", { host: 1 }, { state: "restarting" })], hostNeed(1), { maxLoadedModels: 1 }) }, { action: "start" }],
  ] as [string, PlanInput, unknown][])("%s", (_l, inp, expected) => {
    expect(planStart(inp)).toMatchObject(expected as object);
  });
});

describe("planStart: GPUs", () => {
  test.each([
    ["the GPU with the most room", input([host(64), gpu(0, 80), gpu(1, 80)], [occ("a", { gpu0: 30, host: 1 })], need(20)), { action: "start", placement: { gpus: [1], devices: [{ id: "gpu1", bytes: 20 * G }, { id: "host", bytes: 0.5 * G }] } }],
    ["too big for one: split over two, layers by room", input([host(64), gpu(0, 40), gpu(1, 60)], [], need(80)), { action: "start", placement: { gpus: [1, 0], tensorSplit: [7, 3] } }],
    ["no room on any GPU: evict the model on the GPU", input([host(64), gpu(0, 40)], [occ("a", { gpu0: 30, host: 1 })], need(20)), { action: "stop", models: ["a"] }],
    ["host memory counts too", input([host(4), gpu(0, 80)], [occ("a", { host: 3.8 })], need(20, 1)), { action: "stop", models: ["a"] }],
    ["partial offload allowed: start on what is free, no eviction", input([host(64), gpu(0, 40)], [occ("a", { gpu0: 30, host: 1 })], need(20), { partial: true }), { action: "start", placement: { partial: true, gpus: [0], devices: [{ id: "gpu0", bytes: 10 * G }, { id: "host", bytes: 10.5 * G }] } }],
    ["-ngl 0 (no GPU bytes): host only, even with GPUs", input([host(64), gpu(0, 40)], [], hostNeed(8)), { action: "start", placement: { gpus: [], devices: [{ id: "host", bytes: 8 * G }] } }],
    ["can never fit on the GPUs: refuse with the GPU numbers", input([host(64), gpu(0, 40), gpu(1, 40)], [], need(100)), { action: "refuse", needBytes: 100 * G, freeBytes: 80 * G }],
  ] as [string, PlanInput, unknown][])("%s", (_l, inp, expected) => {
    expect(planStart(inp)).toMatchObject(expected as object);
  });

  test("a split keeps the fixed part (output, compute) on the main GPU", () => {
    const n: ModelNeed = { gpuBytes: 12 * G, hostBytes: 0, gpuLayerBytes: new Array(10).fill(1 * G) }; // 2 GB fixed
    const p = place([host(8), gpu(0, 8), gpu(1, 8)], new Map([["host", 8 * G], ["gpu0", 8 * G], ["gpu1", 8 * G]]), n)!;
    expect(p.gpus).toEqual([0, 1]);
    expect(p.tensorSplit).toEqual([6, 4]);
    expect(p.devices[0]).toEqual({ id: "gpu0", bytes: 8 * G });
  });
});

describe("placementLaunch", () => {
  test.each([
    ["one GPU", { devices: [], gpus: [1] }, true, ["--fit", "off"], { CUDA_VISIBLE_DEVICES: "1", CUDA_DEVICE_ORDER: "PCI_BUS_ID" }],
    ["split", { devices: [], gpus: [1, 0], tensorSplit: [7, 3] }, true, ["--fit", "off", "--tensor-split", "7,3"], { CUDA_VISIBLE_DEVICES: "1,0" }],
    ["partial", { devices: [], gpus: [0], partial: true }, true, ["--fit", "on"], { CUDA_VISIBLE_DEVICES: "0" }],
    ["no GPU on the machine", { devices: [], gpus: [] }, false, ["--fit", "off"], {}],
  ] as const)("%s", (_l, p, present, args, env) => {
    const l = placementLaunch(p as never, present);
    expect(l.args).toEqual([...args]);
    expect(l.env).toMatchObject(env);
  });
});

/** A device of an RPC worker (what remoteBudgets makes of the worker's report). */
const rdev = (worker: string, name: string, gb: number): DeviceBudget => ({ id: `rpc:${worker}/${name}`, kind: "rpc", worker, name, capacityBytes: gb * G });
const rpc = (devices: string[], o: Partial<RpcTarget> = {}): RpcTarget => ({ devices, unavailable: [], ...o });
const over = (devices: DeviceBudget[], occupants: Occupant[], n: ModelNeed, r: RpcTarget, o: Partial<PlanInput> = {}): PlanInput => {
  const i = input(devices, occupants, n, o);
  return { ...i, target: { ...i.target, rpc: r } };
};

describe("planStart: a model started with --rpc counts its workers' devices", () => {
  test.each([
    // 20 GB in 10 layers of 2 GB: split by free memory (24 : 8), remote first as llama-server orders
    // them; layer k goes where k/11 falls among the split points (0.75, 1).
    ["too big for the local GPU: fits over the worker + the local GPU",
      over([host(64), gpu(0, 8), rdev("worker-a", "CUDA0", 24)], [], need(20), rpc(["rpc:worker-a/CUDA0"])),
      { action: "start", placement: { gpus: [0], workers: ["worker-a"], devices: [{ id: "rpc:worker-a/CUDA0", bytes: 18 * G }, { id: "gpu0", bytes: 2 * G }, { id: "host", bytes: 0.5 * G }] } }],
    ["the same model without rpc: refused, the remote device is not its to use",
      input([host(64), gpu(0, 8), rdev("worker-a", "CUDA0", 24)], [], need(20)),
      { action: "refuse", needBytes: 20 * G, freeBytes: 8 * G }],
    ["tensorSplit 1,1 over two CPU workers on a host without GPUs",
      over([host(64), rdev("w1", "CPU", 16), rdev("w2", "CPU", 16)], [], need(20), rpc(["rpc:w1/CPU", "rpc:w2/CPU"], { tensorSplit: [1, 1] })),
      { action: "start", placement: { gpus: [], workers: ["w1", "w2"], devices: [{ id: "rpc:w1/CPU", bytes: 12 * G }, { id: "rpc:w2/CPU", bytes: 8 * G }, { id: "host", bytes: 0.5 * G }] } }],
    ["a tensorSplit that leaves a local GPU out puts nothing there",
      over([host(64), gpu(0, 40), rdev("w1", "CUDA0", 24)], [], need(10), rpc(["rpc:w1/CUDA0"], { tensorSplit: [1] })),
      { action: "start", placement: { gpus: [0], workers: ["w1"], devices: [{ id: "rpc:w1/CUDA0", bytes: 10 * G }, { id: "host", bytes: 0.5 * G }] } }],
    ["what a running model holds on the worker counts: it is stopped to make room",
      over([host(64), rdev("w1", "CPU", 16)], [occ("a", { "rpc:w1/CPU": 10, host: 1 })], need(10), rpc(["rpc:w1/CPU"])),
      { action: "stop", models: ["a"] }],
    ["a model on the local GPU is not stopped for room it does not hold",
      over([host(64), gpu(0, 8), rdev("w1", "CPU", 12)], [occ("local", { gpu0: 8, host: 1 })], need(10), rpc(["rpc:w1/CPU"])),
      { action: "start", placement: { workers: ["w1"], devices: [{ id: "rpc:w1/CPU", bytes: 10 * G }, { id: "host", bytes: 0.5 * G }] } }],
    ["-ngl 0 over rpc: all on the host",
      over([host(64), rdev("w1", "CPU", 16)], [], hostNeed(4), rpc(["rpc:w1/CPU"])),
      { action: "start", placement: { devices: [{ id: "host", bytes: 4 * G }] } }],
  ] as [string, PlanInput, unknown][])("%s", (_l, inp, expected) => {
    expect(planStart(inp)).toMatchObject(expected as object);
  });

  test.each([
    ["a worker that is down contributes nothing, and the refusal says so",
      over([host(64), gpu(0, 8)], [], need(20), rpc([], { unavailable: [{ worker: "worker-a", reason: "down (connection refused)" }] })),
      "needs 20480 MiB of device memory, at most 8192 MiB available on local GPU 0; worker-a contributes nothing: down (connection refused)"],
    ["too big for everything together: the total over every device",
      over([host(64), gpu(0, 8), rdev("w1", "CUDA0", 8)], [], need(20), rpc(["rpc:w1/CUDA0"])),
      "needs 20480 MiB of device memory, at most 16384 MiB available on w1 CUDA0 + local GPU 0"],
    ["enough in total, but the tensorSplit overfills one worker",
      over([host(64), rdev("w1", "CPU", 8), rdev("w2", "CPU", 16)], [], need(20), rpc(["rpc:w1/CPU", "rpc:w2/CPU"], { tensorSplit: [1, 1] })),
      "its tensorSplit 1,1 puts 12288 MiB on w1 CPU, which has 8192 MiB free"],
    ["no device to offload to at all and the host is too small",
      over([host(8)], [], need(20), rpc([], { unavailable: [{ worker: "w1", reason: "its devices are not known (the worker reported none)" }] })),
      "needs 20992 MiB of memory, at most 8192 MiB available (no remote device or local GPU with free memory to offload to); w1 contributes nothing: its devices are not known (the worker reported none)"],
  ] as [string, PlanInput, string][])("refused: %s", (_l, inp, reason) => {
    const d = planStart(inp);
    expect(d.action).toBe("refuse");
    expect(d.action === "refuse" && d.reason).toBe(reason);
  });

  test("the split replays llama.cpp's: cumulative points, the fixed part with the output layer", () => {
    // 12 GB: 10 layers of 1 GB + 2 GB fixed (output, compute). Free 24 : 8 -> points 0.75, 1.
    const n: ModelNeed = { gpuBytes: 12 * G, hostBytes: 0, gpuLayerBytes: new Array(10).fill(1 * G) };
    const devices = [host(8), gpu(0, 8), rdev("w1", "CUDA0", 24)];
    const s = splitOverRpc(devices, new Map(devices.map((d) => [d.id, d.capacityBytes])), n, rpc(["rpc:w1/CUDA0"]))!;
    expect(s.order.map((d) => d.id)).toEqual(["rpc:w1/CUDA0", "gpu0"]);
    expect(s.bytes).toEqual([9 * G, 3 * G]);
  });
});

describe("planStart: rpc-server serves one client at a time", () => {
  /** A model running over `workers` (its placement names them, as placeOverRpc's does). */
  const overW = (id: string, workers: string[], devices: Record<string, number>, o: Partial<Occupant> = {}) => {
    const x = occ(id, devices, o);
    return { ...x, placement: { ...x.placement, workers } };
  };
  const devs = [host(64), rdev("w1", "CPU", 64), rdev("w2", "CPU", 64)];
  const target = rpc(["rpc:w1/CPU"]);
  test.each([
    ["another model over the same worker is stopped first, memory or not; older models elsewhere stay",
      over(devs, [occ("older", { host: 1 }), overW("a", ["w1"], { "rpc:w1/CPU": 1, host: 1 })], need(2), target),
      { action: "stop", models: ["a"], reason: "making room for new: RPC worker w1 serves one model at a time (a runs over it)" }],
    ["a model whose --rpc list holds the worker blocks it even with no layer there",
      over(devs, [overW("a", ["w2", "w1"], { "rpc:w2/CPU": 1, host: 1 })], need(2), target),
      { action: "stop", models: ["a"] }],
    ["a busy one is drained", over(devs, [overW("a", ["w1"], { "rpc:w1/CPU": 1 }, { inFlight: 1 })], need(2), target), { action: "drain", models: ["a"] }],
    ["one still loading over it: wait", over(devs, [overW("a", ["w1"], { "rpc:w1/CPU": 1 }, { state: "loading" })], need(2), target), { action: "wait" }],
    ["a pinned one over it: refused, saying why", over(devs, [overW("p", ["w1"], { "rpc:w1/CPU": 1 }, { pinned: true })], need(2), target),
      { action: "refuse", reason: "RPC worker w1 serves one model at a time and pinned p runs over it" }],
    ["a model over another worker does not block", over(devs, [overW("a", ["w2"], { "rpc:w2/CPU": 1 })], need(2), target), { action: "start" }],
    ["a model without rpc is never blocked by one that has it", input(devs, [overW("a", ["w1"], { "rpc:w1/CPU": 1 })], hostNeed(2)), { action: "start" }],
  ] as [string, PlanInput, unknown][])("%s", (_l, inp, expected) => {
    expect(planStart(inp)).toMatchObject(expected as object);
  });

  test("a worker whose devices are not known yet still counts as held (llama-server connects to it)", () => {
    const held = overW("a", ["w1"], { host: 1 });
    const t = rpc([], { workers: ["w1"], unavailable: [{ worker: "w1", reason: "its devices are not known (the worker reported none)" }] });
    expect(planStart(over([host(64)], [held], hostNeed(2), t))).toMatchObject({ action: "stop", models: ["a"] });
    expect(planStart(over([host(64)], [], hostNeed(2), t))).toMatchObject({ action: "start", placement: { workers: ["w1"] } });
  });

  test("the placement names every worker of the --rpc list, also one its split leaves empty", () => {
    const d = planStart(over([host(64), rdev("w1", "CPU", 64), rdev("w2", "CPU", 64)], [], need(2), rpc(["rpc:w1/CPU", "rpc:w2/CPU"], { tensorSplit: [1, 0] })));
    expect(d).toMatchObject({ action: "start", placement: { workers: ["w1", "w2"], devices: [{ id: "rpc:w1/CPU" }, { id: "host" }] } });
  });
});

describe("placementLabel", () => {
  const devs = [host(64), gpu(0, 8), gpu(1, 8), rdev("worker-a", "CUDA0", 24), rdev("w2", "CUDA0", 8), rdev("w2", "CUDA1", 8)];
  test.each([
    ["a worker and a local GPU", { devices: [{ id: "rpc:worker-a/CUDA0", bytes: 1 }, { id: "gpu0", bytes: 1 }, { id: "host", bytes: 1 }], gpus: [0] }, "worker-a + local GPU 0"],
    ["two devices of one worker", { devices: [{ id: "rpc:w2/CUDA0", bytes: 1 }, { id: "rpc:w2/CUDA1", bytes: 1 }, { id: "host", bytes: 1 }], gpus: [] }, "w2 (CUDA0, CUDA1)"],
    ["a device the split gives nothing is not named", { devices: [{ id: "rpc:worker-a/CUDA0", bytes: 1 }, { id: "gpu1", bytes: 0 }, { id: "host", bytes: 1 }], gpus: [1] }, "worker-a"],
    ["local GPUs only", { devices: [{ id: "gpu1", bytes: 1 }, { id: "gpu0", bytes: 1 }, { id: "host", bytes: 1 }], gpus: [1, 0] }, "local GPU 1 + local GPU 0"],
    ["the host only", { devices: [{ id: "host", bytes: 1 }], gpus: [] }, "local CPU"],
  ] as [string, Parameters<typeof placementLabel>[0], string][])("%s", (_l, p, label) => {
    expect(placementLabel(p, devs)).toBe(label);
  });
});
