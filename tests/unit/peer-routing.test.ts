import { describe, expect, test } from "bun:test";
import { backoffMs, orderRoutes, type RouteCandidate } from "../../src/peers/routing";
import { appendVia, hasPassed, viaHops } from "../../src/peers/instance";

const local = (o: Partial<RouteCandidate> = {}): RouteCandidate => ({ host: "local", kind: "local", running: false, inFlight: 0, priority: 0, available: true, ...o });
const peer = (host: string, o: Partial<RouteCandidate> = {}): RouteCandidate => ({ host, kind: "peer", running: false, inFlight: 0, priority: 0, available: true, ...o });

describe("orderRoutes", () => {
  const cases: Array<[string, RouteCandidate[], string[]]> = [
    ["only local", [local()], ["local"]],
    ["the host running the model wins over an idle local one", [local(), peer("b", { running: true })], ["b", "local"]],
    ["running beats less loaded", [peer("a", { running: true, inFlight: 5 }), peer("b", { inFlight: 0 })], ["a", "b"]],
    ["among running hosts the least loaded first", [peer("a", { running: true, inFlight: 3 }), local({ running: true, inFlight: 1 }), peer("c", { running: true, inFlight: 2 })], ["local", "c", "a"]],
    ["same load: higher priority first", [peer("a", { priority: 1 }), peer("b", { priority: 5 }), local()], ["b", "a", "local"]],
    ["full tie: local first, then by name", [peer("z"), peer("b"), local()], ["local", "b", "z"]],
    ["negative priority goes after local", [peer("a", { priority: -1 }), local()], ["local", "a"]],
    ["peers in back-off are left out", [peer("a", { running: true, available: false }), peer("b")], ["b"]],
    ["nothing available: empty", [peer("a", { available: false })], []],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      expect(orderRoutes(input).map((c) => c.host)).toEqual(expected);
    });
  }
  test("does not reorder its input", () => {
    const input = [peer("b"), local()];
    orderRoutes(input);
    expect(input.map((c) => c.host)).toEqual(["b", "local"]);
  });
});

describe("backoffMs", () => {
  const cases: Array<[number, number]> = [[0, 0], [1, 1000], [2, 2000], [3, 4000], [6, 30_000], [60, 30_000]];
  for (const [failures, ms] of cases) test(`${failures} failures -> ${ms} ms`, () => expect(backoffMs(failures, 1000, 30_000)).toBe(ms));
});

describe("Via loop guard", () => {
  test("hops are read from every entry, ours and others'", () => {
    expect(viaHops("1.1 lap-aaaaaaaaaaaaaaaa, HTTP/1.1 nginx, 1.1 lap-bbbbbbbbbbbbbbbb")).toEqual(["lap-aaaaaaaaaaaaaaaa", "nginx", "lap-bbbbbbbbbbbbbbbb"]);
    expect(viaHops(null)).toEqual([]);
  });
  test("a request that passed us is recognised; one that did not is not", () => {
    const via = appendVia(appendVia(null, "lap-aaaaaaaaaaaaaaaa"), "lap-bbbbbbbbbbbbbbbb");
    expect(via).toBe("1.1 lap-aaaaaaaaaaaaaaaa, 1.1 lap-bbbbbbbbbbbbbbbb");
    expect(hasPassed(via, "lap-aaaaaaaaaaaaaaaa")).toBe(true);
    expect(hasPassed(via, "lap-cccccccccccccccc")).toBe(false);
  });
  test("an absurdly long chain counts as a loop", () => {
    const long = Array.from({ length: 40 }, (_, i) => `1.1 hop${i}`).join(", ");
    expect(hasPassed(long, "lap-cccccccccccccccc")).toBe(true);
    expect(hasPassed("1.1 x".padEnd(5000, "x"), "lap-cccccccccccccccc")).toBe(true);
  });
});
