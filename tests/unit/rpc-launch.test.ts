import { describe, expect, test } from "bun:test";
import { rpcLaunchArgs, type WorkerFacts } from "../../src/rpc/launch";

const up = (name: string, endpoint: string, o: Partial<WorkerFacts> = {}): [string, WorkerFacts] => [name, { name, reachable: true, rpcState: "running", endpoint, generation: 1, urlHost: "10.0.0.2", ...o }];
const facts = new Map<string, WorkerFacts>([
  up("a", "10.0.0.2:50052"),
  up("b", "10.0.0.3:50052", { generation: 4 }),
  ["down", { name: "down", reachable: false, error: "connect ECONNREFUSED 10.0.0.9:3100", urlHost: "10.0.0.9" }],
  up("restarting", "10.0.0.4:50052", { rpcState: "restarting" }),
  up("loop", "127.0.0.1:50052", { urlHost: "10.0.0.5" }),
  up("local", "127.0.0.1:50053", { urlHost: "127.0.0.1" }),
]);
const configured = ["a", "b", "down", "restarting", "loop", "local"];

describe("rpcLaunchArgs", () => {
  const ok: Array<[string, Parameters<typeof rpcLaunchArgs>[0], string[]]> = [
    ["no rpc setting: nothing added", {}, []],
    ["two workers, in the order given", { rpc: ["b", "a"] }, ["--rpc", "10.0.0.3:50052,10.0.0.2:50052"]],
    ["with a tensor split", { rpc: ["a", "b"], tensorSplit: [1, 2.5] }, ["--rpc", "10.0.0.2:50052,10.0.0.3:50052", "--tensor-split", "1,2.5"]],
    ["a loopback worker reached over loopback", { rpc: ["local"] }, ["--rpc", "127.0.0.1:50053"]],
  ];
  for (const [name, settings, args] of ok) {
    test(name, () => {
      const r = rpcLaunchArgs(settings, configured, facts);
      expect(r).toMatchObject({ ok: true, args });
    });
  }
  test("records the generation of each worker used", () => {
    expect(rpcLaunchArgs({ rpc: ["a", "b"] }, configured, facts)).toMatchObject({ workers: [{ name: "a", generation: 1 }, { name: "b", generation: 4 }] });
  });
  const refused: Array<[string, Parameters<typeof rpcLaunchArgs>[0], string[], string]> = [
    ["an unknown worker", { rpc: ["zz"] }, configured, "RPC worker zz is not configured"],
    ["a worker that is down, with its reason", { rpc: ["a", "down"] }, configured, "RPC worker down is down: connect ECONNREFUSED"],
    ["a worker whose rpc-server is restarting", { rpc: ["restarting"] }, configured, "rpc-server is restarting"],
    ["a remote worker whose rpc-server binds loopback", { rpc: ["loop"] }, configured, "only its own host can reach"],
    ['"all" with no workers configured', { rpc: "all" }, [], "no rpcWorkers are configured"],
    ['"all" includes the down one', { rpc: "all" }, configured, "RPC worker down is down"],
  ];
  for (const [name, settings, conf, reason] of refused) {
    test(`refuses ${name}`, () => {
      const r = rpcLaunchArgs(settings, conf, facts);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toContain(reason);
    });
  }
});
