import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { checkRequest, HostAllowList, type GuardInput } from "../../src/http/guard";
import { isOllamaPath } from "../../src/ollama/paths";
import { makeTestServices, type TestContext } from "../helpers/services";

// Ollama's routes behind the request guard and the key, through app.request() (no processes).
let t: TestContext;
beforeAll(() => {
  t = makeTestServices();
});
afterAll(() => t.cleanup());

const send = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
  t.app.request(`http://127.0.0.1:3000${path}`, { ...init, headers: { host: "127.0.0.1:3000", ...init.headers } });

describe("the request guard on Ollama's routes", () => {
  const hosts = new HostAllowList({ allowedHosts: [], boundHost: "127.0.0.1", port: () => 3000 });
  const req = (headers: Record<string, string>, method = "POST", path = "/api/chat"): GuardInput => ({
    method, path, headers: new Headers({ host: "127.0.0.1:3000", ...headers }), urlHost: "127.0.0.1:3000",
  });
  const opts = { anyBodyType: isOllamaPath };
  test.each([
    ["curl -d (form type, no browser signal)", req({ "content-type": "application/x-www-form-urlencoded" }), null],
    ["no type at all, no browser signal", req({}), null],
    ["JSON from a script", req({ "content-type": "application/json" }), null],
    ["same-origin browser fetch with JSON", req({ origin: "http://127.0.0.1:3000", "sec-fetch-site": "same-origin", "content-type": "application/json" }), null],
    ["same-origin browser posting a form type", req({ origin: "http://127.0.0.1:3000", "sec-fetch-site": "same-origin", "content-type": "text/plain" }), "content-type"],
    ["cross-site form post", req({ origin: "https://evil.example", "sec-fetch-site": "cross-site", "content-type": "application/x-www-form-urlencoded" }), "origin"],
    ["no-cors post without Origin", req({ "sec-fetch-site": "cross-site", "content-type": "text/plain" }), "cross-site"],
    ["a browser fetch with only Sec-Fetch-Mode", req({ "sec-fetch-mode": "no-cors", "content-type": "text/plain" }), "content-type"],
    ["forged Host (DNS rebinding)", req({ host: "evil.example:3000", "content-type": "application/json" }), "host"],
    ["the seed's /api keeps the JSON rule", req({ "content-type": "application/x-www-form-urlencoded" }, "POST", "/api/models"), "content-type"],
    ["so does /v1", req({ "content-type": "text/plain" }, "POST", "/v1/chat/completions"), "content-type"],
  ])("%s", (_name, input, expected) => {
    expect(checkRequest(input, hosts, opts)?.reason ?? null).toBe(expected as never);
  });

  test("a forged Host on an Ollama route is refused in Ollama's shape", async () => {
    const res = await send("/api/tags", { headers: { host: "evil.example:3000" } });
    expect(res.status).toBe(403);
    const body = await res.json();
    expect(Object.keys(body)).toEqual(["error"]);
    expect(body.error).toMatch(/Host not allowed/);
  });

  test("a cross-origin post to /api/chat is refused before any model is touched", async () => {
    const res = await send("/api/chat", { method: "POST", headers: { origin: "https://evil.example", "content-type": "text/plain" }, body: '{"model":"x","messages":[]}' });
    expect(res.status).toBe(403);
    expect((await res.json()).error).toMatch(/Cross-origin/);
  });
});

describe("Ollama's routes without processes", () => {
  test("version, empty tags and ps", async () => {
    expect(await (await send("/api/version")).json()).toEqual({ version: expect.stringMatching(/^\d+\.\d+\.\d+$/) });
    expect(await (await send("/api/tags")).json()).toEqual({ models: [] });
    expect(await (await send("/api/ps")).json()).toEqual({ models: [] });
  });

  test("HEAD /api/version answers like GET, without a body", async () => {
    const res = await send("/api/version", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });

  test("a wrong method on an Ollama path is a 404 in Ollama's shape; GET / is still the console", async () => {
    const res = await send("/api/chat");
    expect(res.status).toBe(404);
    expect(typeof (await res.json()).error).toBe("string");
    const consolePage = await send("/");
    expect(consolePage.status).toBe(200);
    expect(consolePage.headers.get("content-type")).toContain("text/html");
  });
});
