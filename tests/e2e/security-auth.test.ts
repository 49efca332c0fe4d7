// Regression tests for issue #11's authentication findings (6 and the auth parts of 10), on a
// real server with an API key, through raw fetch and raw sockets.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startServer, type RunningServer } from "../../src/server";
import { killAndWait, startListening } from "../helpers/process";

const KEY = "correct-horse-battery-staple";
const UPGRADE = { upgrade: "websocket", connection: "upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" };
const SAME_ORIGIN_FORM = { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin" };

let dir: string;
let srv: RunningServer;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lap-auth-"));
  srv = await startServer({
    port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"),
    logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:", apiKey: KEY,
  });
  base = srv.url;
});
afterAll(async () => {
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ROUTES: Array<[string, string, Record<string, string>?]> = [
  ["GET", "/"],
  ["GET", "/models"],
  ["GET", "/ui/models/table"],
  ["GET", "/ui/models/queue"],
  ["GET", "/api/activity/req_x/capture"],
  ["GET", "/api/config"],
  ["POST", "/api/models/discover", { "content-type": "application/json" }],
  ["GET", "/api/health"],
  ["GET", "/v1/models"],
  ["POST", "/v1/chat/completions", { "content-type": "application/json" }],
  ["POST", "/completion", { "content-type": "application/json" }],
  ["GET", "/upstream/x/props"],
  ["GET", "/metrics"],
  ["GET", "/llamaproxws", UPGRADE],
  ["GET", "/llamaproxws/?EIO=4&transport=polling"],
];
const MALFORMED: Record<string, string>[] = [
  { cookie: "lap_key=%" },
  { cookie: "lap_session=%" },
  { cookie: "lap_session=%E0%A4%A" },
  { cookie: `lap_session="${"x".repeat(5000)}"` },
  { cookie: ";;;=;=%;lap_session" },
  { authorization: "Bearer" },
  { authorization: "Bearer    " },
  { authorization: "Basic %%%%" },
  { authorization: `Bearer ${"k".repeat(10_000)}` },
  { "x-api-key": "%" },
];

const tally = { tried: 0, answered401: 0 };

describe("finding 6: a cookie crashes every route", () => {
  test("malformed cookies and headers are a 401 on every route, never a 500, never HTML", async () => {
    const errorsBefore = srv.services.logs.query({ level: "error" }).length;
    for (const [method, path, headers] of ROUTES) {
      for (const bad of MALFORMED) {
        const res = await fetch(`${base}${path}`, { method, headers: { ...headers, ...bad }, body: method === "POST" ? "{}" : undefined });
        tally.tried++;
        if (res.status === 401) tally.answered401++;
        expect(`${path} ${JSON.stringify(bad).slice(0, 60)} -> ${res.status}`).toBe(`${path} ${JSON.stringify(bad).slice(0, 60)} -> 401`);
        const type = res.headers.get("content-type") ?? "";
        // Console pages answer the login page (HTML by design); everything else JSON, never Bun's error page.
        if (path === "/" || path === "/models") expect(await res.text()).toContain('name="key"');
        else if (path.startsWith("/ui/")) expect(await res.text()).toBe("Log in first: open /login");
        else expect(type).toContain("json");
      }
    }
    // Nothing was logged as an error: the log ring cannot be flooded this way.
    expect(srv.services.logs.query({ level: "error" }).length).toBe(errorsBefore);
  });

  test("without a key the same cookies are ignored: routes answer normally", async () => {
    const d = mkdtempSync(join(tmpdir(), "lap-auth-open-"));
    const open = await startServer({ port: 0, host: "127.0.0.1", dataDir: d, configPath: join(d, "c.json"), logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:" });
    try {
      for (const path of ["/", "/api/config", "/v1/models"]) {
        expect((await fetch(`${open.url}${path}`, { headers: { cookie: "lap_key=%; lap_session=%" } })).status).toBe(200);
      }
      const ws = await fetch(`${open.url}/llamaproxws`, { headers: { ...UPGRADE, cookie: "lap_key=%" } });
      expect(ws.status).toBe(101);
    } finally {
      await open.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });

  test("a raw request Bun cannot route still gets no development error page", async () => {
    const port = srv.server.port!;
    const answer = await new Promise<string>((resolveAnswer, reject) => {
      const sock = connect(port, "127.0.0.1", () => sock.write("GET /llamaproxws HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: lap_key=%\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n"));
      let text = "";
      sock.on("data", (d) => (text += d.toString()));
      sock.on("end", () => resolveAnswer(text));
      sock.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 401/);
    expect(answer).not.toContain("<html");
    expect(answer).not.toContain("node_modules");
  });
});

describe("finding 10: auth hardening", () => {
  const login = (key: string, next = "/models", headers: Record<string, string> = {}) =>
    fetch(`${base}/login`, { method: "POST", headers: { ...SAME_ORIGIN_FORM, ...headers }, body: new URLSearchParams({ key, next }).toString(), redirect: "manual" });

  test("the console cookie is a random expiring session token, HttpOnly, SameSite=Strict; Secure behind https; logout revokes it", async () => {
    const res = await login(KEY);
    expect(res.status).toBe(303);
    const cookie = res.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^lap_session=[\w-]{40,};/);
    expect(cookie).not.toContain(KEY);
    expect(cookie).not.toContain(encodeURIComponent(KEY));
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    expect(cookie).toMatch(/Max-Age=\d+/);
    expect(cookie).toMatch(/Expires=/);
    expect(cookie).not.toContain("Secure");
    const session = cookie.split(";")[0]!;
    expect((await fetch(`${base}/api/config`, { headers: { cookie: session } })).status).toBe(200);
    expect((await fetch(`${base}/llamaproxws`, { headers: { ...UPGRADE, cookie: session } })).status).toBe(101);

    const behindTls = await login(KEY, "/", { "x-forwarded-proto": "https" });
    expect(behindTls.headers.get("set-cookie")).toContain("Secure");

    const out = await fetch(`${base}/logout`, { method: "POST", headers: { ...SAME_ORIGIN_FORM, cookie: session }, redirect: "manual" });
    expect(out.status).toBe(303);
    expect((await fetch(`${base}/api/config`, { headers: { cookie: session } })).status).toBe(401);
  });

  test("open redirect after login: next only ever names a path on this server", async () => {
    for (const next of ["/\\evil.example", "//evil.example", "https://evil.example/", "/\t/evil.example", "javascript:alert(1)", "/%0d%0aSet-Cookie:x=y"]) {
      const res = await login(KEY, next);
      const where = res.headers.get("location")!;
      expect(where.startsWith("/")).toBe(true);
      expect(where.startsWith("//")).toBe(false);
      expect(new URL(where, base).origin).toBe(new URL(base).origin);
      expect(where).not.toMatch(/[\r\n\\]/);
    }
    expect((await login(KEY, "/models?x=1")).headers.get("location")).toBe("/models?x=1");
    const page = await (await fetch(`${base}/login?next=//evil.example`)).text();
    expect(page).toContain('name="next" value="/"');
  });

  test("login failures are throttled per client address", async () => {
    // Another address on the loopback network (127.0.0.0/8), through a raw socket: its own budget.
    const rawLogin = (localAddress: string, key: string) =>
      new Promise<number>((resolveStatus, reject) => {
        const body = new URLSearchParams({ key, next: "/" }).toString();
        const sock = connect({ port: srv.server.port!, host: "127.0.0.1", localAddress }, () =>
          sock.write(`POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`),
        );
        let text = "";
        sock.on("data", (d) => (text += d.toString()));
        sock.on("end", () => resolveStatus(Number(text.slice(9, 12))));
        sock.on("error", reject);
      });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push(await rawLogin("127.0.0.3", "wrong-key-" + i));
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
    // Locked out even with the right key until the window passes...
    expect(await rawLogin("127.0.0.3", KEY)).toBe(429);
    // ...while another address logs in normally.
    expect(await rawLogin("127.0.0.4", KEY)).toBe(303);
  });

  test("the key can come from a file or API_KEY so it never shows in ps", async () => {
    const keyFile = join(dir, "key.txt");
    writeFileSync(keyFile, `${KEY}\n`);
    const d = mkdtempSync(join(tmpdir(), "lap-auth-ps-"));
    const main = resolve(import.meta.dir, "../../src/main.ts");
    const { proc, url } = await startListening([process.execPath, main, "--port", "0", "--data-dir", d, "--api-key-file", keyFile], { env: { LOG_LEVEL: "error" } });
    try {
      const cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, "utf8");
      expect(cmdline).not.toContain(KEY);
      expect((await fetch(`${url}/api/config`)).status).toBe(401);
      expect((await fetch(`${url}/api/config`, { headers: { authorization: `Bearer ${KEY}` } })).status).toBe(200);
    } finally {
      await killAndWait(proc, "SIGTERM");
      rmSync(d, { recursive: true, force: true });
    }
  });

  afterAll(() => {
    console.log(`[security-auth] routes x malformed credentials tried: ${tally.tried}, answered 401: ${tally.answered401}`);
  });
});
