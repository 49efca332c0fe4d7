import { describe, expect, test } from "bun:test";
import { remoteBudgets, rpcTargetOf, type RemoteWorkerReport } from "../../src/memory/budget";

const MiB = 1024 * 1024;
const up = (name: string, devices: RemoteWorkerReport["devices"]): RemoteWorkerReport => ({ name, state: "up", rpcState: "running", devices });
const cuda = (name: string, freeMiB: number) => ({ name, totalMiB: 24000, freeMiB });

describe("remoteBudgets: what the RPC workers' devices can give", () => {
  test.each([
    ["a worker that is up: each device's free memory minus the margin", [up("w1", [cuda("CUDA0", 23000), cuda("CUDA1", 22000)])], 1024, 0,
      [["rpc:w1/CUDA0", "w1", "CUDA0", 21976], ["rpc:w1/CUDA1", "w1", "CUDA1", 20976]]],
    ["memoryLimitMiB caps each device", [up("w1", [cuda("CUDA0", 23000)])], 0, 8000, [["rpc:w1/CUDA0", "w1", "CUDA0", 8000]]],
    ["a worker that is down adds nothing", [{ ...up("w1", [cuda("CUDA0", 23000)]), state: "down" }], 0, 0, []],
    ["a worker whose rpc-server is restarting adds nothing (its tensors are gone anyway)", [{ ...up("w1", [cuda("CUDA0", 23000)]), rpcState: "restarting" }], 0, 0, []],
    ["a device with less free than the margin gives 0, never less", [up("w1", [cuda("CPU", 100)])], 1024, 0, [["rpc:w1/CPU", "w1", "CPU", 0]]],
  ] as [string, RemoteWorkerReport[], number, number, [string, string, string, number][]][])("%s", (_l, workers, margin, limit, expected) => {
    const b = remoteBudgets(workers, margin, limit);
    expect(b.map((d) => [d.id, d.worker, d.name, d.capacityBytes / MiB])).toEqual(expected);
    expect(b.every((d) => d.kind === "rpc")).toBe(true);
  });
});

describe("rpcTargetOf: a model's rpc setting as the planner sees it", () => {
  const workers: RemoteWorkerReport[] = [
    up("w1", [cuda("CUDA0", 1000), cuda("CUDA1", 1000)]),
    { name: "w2", state: "down", devices: [], lastError: { message: "connect ECONNREFUSED 127.0.0.1:3101" } },
    { name: "w3", state: "up", rpcState: "running", devices: [] },
    { name: "w4", state: "unknown", devices: [] },
    { name: "w5", state: "up", rpcState: "starting", devices: [] },
    up("w6", [cuda("CPU", 500)]),
  ];
  test.each([
    ["no rpc setting: not an RPC model", undefined, undefined, undefined],
    ["the list's order, each worker's devices in its order", ["w6", "w1"], undefined, { devices: ["rpc:w6/CPU", "rpc:w1/CUDA0", "rpc:w1/CUDA1"], unavailable: [] }],
    ["each missing worker with its reason", ["w1", "w2", "w3", "w4", "w5", "nope"], [1, 1], {
      devices: ["rpc:w1/CUDA0", "rpc:w1/CUDA1"],
      tensorSplit: [1, 1],
      unavailable: [
        { worker: "w2", reason: "down (connect ECONNREFUSED 127.0.0.1:3101)" },
        { worker: "w3", reason: "its devices are not known (the worker reported none)" },
        { worker: "w4", reason: "not checked yet" },
        { worker: "w5", reason: "its rpc-server is starting" },
        { worker: "nope", reason: "not configured in rpcWorkers" },
      ],
    }],
    ['"all": every configured worker, in config order', "all", undefined, { devices: ["rpc:w1/CUDA0", "rpc:w1/CUDA1", "rpc:w6/CPU"] }],
  ] as [string, string[] | "all" | undefined, number[] | undefined, unknown][])("%s", (_l, setting, split, expected) => {
    const t = rpcTargetOf(setting, split, workers);
    if (expected === undefined) expect(t).toBeUndefined();
    else expect(t).toMatchObject(expected as object);
  });
});
