import { describe, expect, test } from "bun:test";
import { checkRequest, HostAllowList, splitHostPort, type GuardInput, type RefusalReason } from "../../src/http/guard";

// The request guard's decision as a table: (policy, request) -> allowed or the reason refused.
const PORT = 3000;
const loopback = new HostAllowList({ allowedHosts: [], boundHost: "127.0.0.1", port: () => PORT });
const listed = new HostAllowList({ allowedHosts: ["proxy.example", "pinned.example:8443"], boundHost: "127.0.0.1", port: () => PORT });
const lan = new HostAllowList({ allowedHosts: [], boundHost: "192.168.7.9", port: () => PORT });

function req(method: string, path: string, headers: Record<string, string>): GuardInput {
  return { method, path, headers: new Headers(headers), urlHost: headers.host ?? "localhost" };
}
const JSON_TYPE = { "content-type": "application/json" };

type Row = [string, HostAllowList, GuardInput, RefusalReason | null];
const rows: Row[] = [
  // rule 1: Host
  ["loopback name", loopback, req("GET", "/api/config", { host: "localhost:3000" }), null],
  ["loopback address", loopback, req("GET", "/api/config", { host: "127.0.0.1:3000" }), null],
  ["other 127/8 address", loopback, req("GET", "/", { host: "127.0.0.2:3000" }), null],
  ["IPv6 loopback", loopback, req("GET", "/", { host: "[::1]:3000" }), null],
  ["trailing dot, upper case", loopback, req("GET", "/", { host: "LOCALHOST.:3000" }), null],
  ["rebinding name", loopback, req("GET", "/api/config", { host: "evil.example:3000" }), "host"],
  ["name that merely starts like localhost", loopback, req("GET", "/", { host: "localhost.evil.example" }), "host"],
  ["127.0.0.1 as a subdomain", loopback, req("GET", "/", { host: "127.0.0.1.evil.example" }), "host"],
  ["garbage Host", loopback, req("GET", "/", { host: "a b" }), "host"],
  ["empty Host", loopback, req("GET", "/", { host: "" }), "host"],
  ["listed name, any port", listed, req("GET", "/", { host: "proxy.example" }), null],
  ["pinned name, its port", listed, req("GET", "/", { host: "pinned.example:8443" }), null],
  ["pinned name, another port", listed, req("GET", "/", { host: "pinned.example:9000" }), "host"],
  ["bound LAN address", lan, req("GET", "/", { host: "192.168.7.9:3000" }), null],
  ["another LAN address", lan, req("GET", "/", { host: "192.168.7.10:3000" }), "host"],
  // rule 2: Origin, compared with the allow-list and our port, never with Host
  ["same-origin browser", loopback, req("POST", "/api/config", { host: "127.0.0.1:3000", origin: "http://127.0.0.1:3000", ...JSON_TYPE }), null],
  ["rebound page: Host and Origin agree but are not allowed", loopback, req("POST", "/api/config", { host: "evil.example:3000", origin: "http://evil.example:3000", ...JSON_TYPE }), "host"],
  ["allowed Host, foreign Origin", loopback, req("POST", "/api/config", { host: "127.0.0.1:3000", origin: "http://evil.example", ...JSON_TYPE }), "origin"],
  ["another local app on another port", loopback, req("POST", "/api/config", { host: "127.0.0.1:3000", origin: "http://localhost:8080", ...JSON_TYPE }), "origin"],
  ["Origin: null", loopback, req("GET", "/llamaproxws", { host: "127.0.0.1:3000", origin: "null" }), "origin"],
  ["Origin with another scheme", loopback, req("GET", "/llamaproxws", { host: "127.0.0.1:3000", origin: "chrome-extension://abc" }), "origin"],
  ["unparsable Origin", loopback, req("GET", "/llamaproxws", { host: "127.0.0.1:3000", origin: "http://" }), "origin"],
  ["listed name behind a TLS proxy", listed, req("POST", "/api/config", { host: "proxy.example", origin: "https://proxy.example", ...JSON_TYPE }), null],
  // rule 3: Fetch Metadata
  ["cross-site no-cors POST without Origin", loopback, req("POST", "/v1/chat/completions", { host: "127.0.0.1:3000", "sec-fetch-site": "cross-site", ...JSON_TYPE }), "cross-site"],
  ["cross-site <img> on the socket", loopback, req("GET", "/llamaproxws", { host: "127.0.0.1:3000", "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image" }), "cross-site"],
  ["same-site (another port) without Origin", loopback, req("GET", "/llamaproxws", { host: "127.0.0.1:3000", "sec-fetch-site": "same-site", "sec-fetch-mode": "no-cors" }), "cross-site"],
  ["link to the console from another site", loopback, req("GET", "/", { host: "127.0.0.1:3000", "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" }), null],
  ["console framed by another site", loopback, req("GET", "/", { host: "127.0.0.1:3000", "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "iframe" }), "cross-site"],
  ["cross-site form navigation POST", loopback, req("POST", "/ui/settings", { host: "127.0.0.1:3000", "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate" }), "cross-site"],
  ["same-origin fetch", loopback, req("GET", "/api/logs", { host: "127.0.0.1:3000", "sec-fetch-site": "same-origin" }), null],
  // rule 4: JSON on every unsafe method outside forms and the socket
  ["POST without a type (no-cors, curl -d)", loopback, req("POST", "/api/models/m/start", { host: "127.0.0.1:3000" }), "content-type"],
  ["text/plain inference", loopback, req("POST", "/v1/chat/completions", { host: "127.0.0.1:3000", "content-type": "text/plain" }), "content-type"],
  ["form-encoded native endpoint", loopback, req("POST", "/completion", { host: "127.0.0.1:3000", "content-type": "application/x-www-form-urlencoded" }), "content-type"],
  ["DELETE without a type", loopback, req("DELETE", "/api/models/m", { host: "127.0.0.1:3000" }), "content-type"],
  ["a route added later (Ollama /api/chat)", loopback, req("POST", "/api/chat", { host: "127.0.0.1:3000", "content-type": "text/plain" }), "content-type"],
  ["JSON with charset", loopback, req("POST", "/v1/completions", { host: "127.0.0.1:3000", "content-type": "application/json; charset=utf-8" }), null],
  ["+json type", loopback, req("PATCH", "/api/models/m", { host: "127.0.0.1:3000", "content-type": "application/merge-patch+json" }), null],
  ["json-looking but not JSON", loopback, req("POST", "/api/config", { host: "127.0.0.1:3000", "content-type": "application/jsonx" }), "content-type"],
  ["Engine.IO polling POST (text/plain)", loopback, req("POST", "/llamaproxws/", { host: "127.0.0.1:3000", "content-type": "text/plain;charset=UTF-8" }), null],
  // rule 5: console forms only from our own pages
  ["htmx form post from our page", loopback, req("POST", "/ui/settings", { host: "127.0.0.1:3000", origin: "http://127.0.0.1:3000", "sec-fetch-site": "same-origin", "content-type": "application/x-www-form-urlencoded" }), null],
  ["login form from our page (no Origin, Sec-Fetch-Site only)", loopback, req("POST", "/login", { host: "127.0.0.1:3000", "sec-fetch-site": "same-origin", "content-type": "application/x-www-form-urlencoded" }), null],
  ["form post from a script (no browser headers)", loopback, req("POST", "/ui/settings", { host: "127.0.0.1:3000", "content-type": "application/x-www-form-urlencoded" }), "form-origin"],
];

describe("request guard decisions", () => {
  for (const [name, hosts, input, expected] of rows) {
    test(`${name}: ${expected ?? "allowed"}`, () => {
      expect(checkRequest(input, hosts)?.reason ?? null).toBe(expected);
    });
  }

  test("the Origin port is not checked before the server listens (app.request in tests)", () => {
    const unbound = new HostAllowList({ allowedHosts: [], boundHost: "127.0.0.1", port: () => 0 });
    expect(checkRequest(req("POST", "/ui/x", { host: "localhost", origin: "http://localhost" }), unbound)).toBeNull();
  });

  test("host:port parsing", () => {
    expect(splitHostPort("[::1]:3000")).toEqual({ hostname: "::1", port: 3000 });
    expect(splitHostPort("::1")).toEqual({ hostname: "::1" });
    expect(splitHostPort("Example.COM:80")).toEqual({ hostname: "example.com", port: 80 });
    expect(splitHostPort("x:99999")).toBeNull();
    expect(splitHostPort("x/y")).toBeNull();
    expect(() => new HostAllowList({ allowedHosts: ["bad host"], boundHost: "127.0.0.1", port: () => 0 })).toThrow();
  });
});

describe("remembered decisions (Host and Origin values are decided once)", () => {
  test("the same answers the second time, and after a flood of new values", () => {
    let port = 0;
    const hosts = new HostAllowList({ allowedHosts: ["proxy.example"], boundHost: "127.0.0.1", port: () => port });
    const ask = () => [hosts.hostAllowed("127.0.0.1:3000"), hosts.hostAllowed("evil.example"), hosts.hostAllowed("proxy.example"), hosts.originAllowed("http://127.0.0.1:3000"), hosts.originAllowed("http://evil.example")];
    // Before the listen (port 0) a loopback Origin on any port passes.
    expect(ask()).toEqual([true, false, true, true, false]);
    port = 4000;
    // The port is known now: an Origin on another port of this host is refused, though it passed before.
    expect(ask()).toEqual([true, false, true, false, false]);
    expect(hosts.originAllowed("http://127.0.0.1:4000")).toBe(true);
    for (let i = 0; i < 2000; i++) {
      expect(hosts.hostAllowed(`rebind-${i}.example`)).toBe(false);
      expect(hosts.originAllowed(`http://rebind-${i}.example`)).toBe(false);
    }
    expect(ask()).toEqual([true, false, true, false, false]);
    expect(hosts.originAllowed("http://127.0.0.1:4000")).toBe(true);
  });
});
