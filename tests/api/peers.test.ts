import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadInstanceId } from "../../src/peers/instance";
import { FAKE_LLAMA_SERVER, jsonRequest, makeTestServices, type TestContext } from "../helpers/services";

const VALID = { host: "localhost", port: 8134, basePath: "/models", serverPath: FAKE_LLAMA_SERVER, ctx_size: 8192, batch_size: 512, threads: -1, gpu_layers: -1 };

let t: TestContext;
beforeEach(() => (t = makeTestServices()));
afterEach(() => t.cleanup());

const post = (body: unknown) => t.app.request("/api/config", jsonRequest("POST", { ...VALID, ...(body as object) }));

describe("peers and rpcWorkers in POST /api/config", () => {
  const bad: Array<[string, unknown, string]> = [
    ["a file: URL", { peers: [{ name: "b", url: "file:///etc/passwd" }] }, "must use http or https"],
    ["not a URL", { peers: [{ name: "b", url: "not a url" }] }, "absolute http"],
    ["credentials in the URL", { peers: [{ name: "b", url: "http://u:p@b.local" }] }, "credentials"],
    ["a name with spaces", { peers: [{ name: "my peer", url: "http://b.local" }] }, "peer name"],
    ["the same name twice", { peers: [{ name: "b", url: "http://b1" }, { name: "B", url: "http://b2" }] }, "used twice"],
    ["too many peers", { peers: Array.from({ length: 33 }, (_, i) => ({ name: `p${i}`, url: `http://p${i}` })) }, "at most 32"],
    ["a long glob", { peers: [{ name: "b", url: "http://b", models: ["x".repeat(201)] }] }, "at most 200"],
    ["an unknown key", { peers: [{ name: "b", url: "http://b", key: "x" }] }, "key"],
    ["a worker without a key", { rpcWorkers: [{ name: "w", url: "http://w:3100" }] }, "apiKey"],
    ["a key with spaces", { rpcWorkers: [{ name: "w", url: "http://w:3100", apiKey: "a b" }] }, "printable"],
  ];
  for (const [what, body, message] of bad) {
    test(`refuses ${what} with VALIDATION_ERROR`, async () => {
      const res = await post(body);
      expect(res.status).toBe(400);
      const json = await res.json();
      expect(json.error.code).toBe("VALIDATION_ERROR");
      expect(json.error.details).toContain(message);
      expect(t.services.config.get().peers).toEqual([]);
    });
  }

  test("saves valid peers (URL spelled one way) and keeps them when a later POST leaves them out", async () => {
    const res = await post({ peers: [{ name: "b", url: "http://10.0.0.2:3000/v1/", apiKey: "k-123", models: ["llama-*"], priority: 2 }] });
    expect(res.status).toBe(200);
    expect(t.services.config.get().peers).toEqual([{ name: "b", url: "http://10.0.0.2:3000", apiKey: "k-123", models: ["llama-*"], priority: 2 }]);
    expect((await post({})).status).toBe(200);
    expect(t.services.config.get().peers).toHaveLength(1);
    const listed = (await (await t.app.request("/api/peers")).json()).data;
    expect(listed.peers).toEqual([expect.objectContaining({ name: "b", url: "http://10.0.0.2:3000", state: "unknown", priority: 2, models: [] })]);
    expect((await t.app.request("/api/peers/nope/check", jsonRequest("POST", ""))).status).toBe(404);
  });
});

describe("instance id", () => {
  test("is created once per data dir and kept across restarts", () => {
    const id = t.services.instanceId;
    expect(id).toMatch(/^lap-[0-9a-f]{16}$/);
    expect(readFileSync(join(t.dir, "instance-id"), "utf8").trim()).toBe(id);
    expect(loadInstanceId(t.dir)).toBe(id);
  });
});

describe("the request guard covers the peer routes", () => {
  test("a forged Host is refused on /api/peers, on its check and on /v1/models (which lists peers)", async () => {
    for (const [path, init] of [
      ["http://evil.example/api/peers", {}],
      ["http://evil.example/api/peers/b/check", jsonRequest("POST", "")],
      ["http://evil.example/v1/models", {}],
    ] as const) {
      const res = await t.app.request(path, { ...init, headers: { ...((init as RequestInit).headers ?? {}), host: "evil.example" } });
      expect(res.status).toBe(403);
    }
  });
});
