import { afterAll, describe, expect, test } from "bun:test";
import { TrieRouter } from "hono/router/trie-router";
import { CachingRouter } from "../../src/http/router";
import { makeTestServices } from "../helpers/services";

// What Hono does with a match: the handlers in order, each with its parameters resolved.
type Match = ReturnType<TrieRouter<string>["match"]>;
const resolved = ([handlers, stash]: Match) =>
  handlers.map(([handler, params]) => [handler, Object.fromEntries(Object.entries(params).map(([k, v]) => [k, stash ? stash[v as unknown as number] : v]))]);

describe("CachingRouter", () => {
  const ctx = makeTestServices();
  afterAll(() => ctx.cleanup());

  // Every route and middleware of the real app, each under a label saying which one it is.
  const routes = ctx.app.routes.map((r, i) => ({ method: r.method, path: r.path, label: `${i} ${r.method} ${r.path}` }));
  const build = <R extends TrieRouter<string> | CachingRouter<string>>(router: R) => {
    for (const r of routes) router.add(r.method, r.path, r.label);
    return router;
  };
  const paths = [
    "/", "/api/monitoring", "/api/monitoring/history", "/api/models", "/api/models/discover", "/api/models/m1",
    "/api/models/m1/start", "/api/models/m1/stop", "/api/models/m%201/restart", "/api/models/m1/kv-cache",
    "/api/activity/summary", "/api/activity/42/capture", "/ui/models/table", "/ui/models/m1/row",
    "/ui/models/m1/kv-cache/abc/delete", "/ui/models/register", "/v1/chat/completions", "/v1/models",
    "/upstream/m1/slots", "/api/tags", "/api/chat", "/metrics", "/static/app.js", "/nope", "/api/nope",
  ];

  test("answers every method and path like Hono's TrieRouter, on the first and later requests", () => {
    const trie = build(new TrieRouter<string>());
    // One router for all methods: a kept match of GET must never answer POST on the same path.
    const cached = build(new CachingRouter<string>());
    for (const round of [1, 2]) {
      for (const method of ["GET", "POST", "DELETE", "PUT"]) {
        for (const path of paths) expect([round, method, path, resolved(cached.match(method, path))]).toEqual([round, method, path, resolved(trie.match(method, path))]);
      }
    }
  });

  test("the real app's matches differ by path (a hit is the path's own match, not a neighbour's)", () => {
    const cached = build(new CachingRouter<string>());
    const start = resolved(cached.match("POST", "/api/models/m1/start"));
    const discover = resolved(cached.match("POST", "/api/models/discover"));
    expect(start).not.toEqual(discover);
    expect(start.at(-1)).toEqual([expect.stringContaining("/api/models/:id/start"), { id: "m1" }]);
    expect(resolved(cached.match("POST", "/api/models/m2/start")).at(-1)?.[1]).toEqual({ id: "m2" });
  });

  test("holds at most maxEntries paths, and long paths not at all", () => {
    const cached = build(new CachingRouter<string>(8));
    for (let i = 0; i < 100; i++) cached.match("GET", `/api/models/m${i}`);
    expect(cached.size).toBe(8);
    // The oldest went first: the newest is still answered right.
    expect(resolved(cached.match("GET", "/api/models/m99")).at(-1)?.[1]).toEqual({ id: "m99" });
    const long = `/api/models/${"x".repeat(300)}`;
    const before = cached.size;
    expect(resolved(cached.match("GET", long)).at(-1)?.[1]).toEqual({ id: "x".repeat(300) });
    expect(cached.size).toBe(before);
  });

  test("a route added after a match is seen (the kept matches are dropped)", () => {
    const cached = new CachingRouter<string>();
    cached.add("GET", "/a/*", "mw");
    expect(resolved(cached.match("GET", "/a/b"))).toEqual([["mw", {}]]);
    cached.add("GET", "/a/b", "route");
    expect(resolved(cached.match("GET", "/a/b"))).toEqual([["mw", {}], ["route", {}]]);
  });
});
