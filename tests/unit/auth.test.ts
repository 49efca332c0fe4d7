import { describe, expect, test } from "bun:test";
import { Authenticator, LoginThrottle, presentedCredentials, safeNextPath, secretsEqual, SESSION_TTL_MS } from "../../src/http/auth";

describe("secretsEqual (constant time whatever the length)", () => {
  test.each([
    ["abcdefgh", "abcdefgh", true],
    ["abcdefgh", "abcdefg", false],
    ["abcdefgh", "abcdefghi", false],
    ["abcdefgh", "", false],
    ["abcdefgh", "x".repeat(100_000), false],
    ["é-key-123", "é-key-123", true],
  ])("%p vs %p -> %p", (a, b, want) => {
    expect(secretsEqual(a, b)).toBe(want);
  });
});

describe("presentedCredentials never throws", () => {
  test.each([["lap_session=%"], ["lap_session=%E0%A4%A"], ["=;;="], ["lap_session"], ["a=b; lap_session=tok"]])("cookie %p", (cookie) => {
    expect(() => presentedCredentials(new Headers({ cookie }))).not.toThrow();
  });
  test("reads bearer, X-API-Key and the session cookie", () => {
    expect(presentedCredentials(new Headers({ authorization: "Bearer  k1 " }))).toEqual({ key: "k1" });
    expect(presentedCredentials(new Headers({ "x-api-key": "k2" }))).toEqual({ key: "k2" });
    expect(presentedCredentials(new Headers({ cookie: "a=b; lap_session=tok" }))).toEqual({ session: "tok" });
    expect(presentedCredentials(new Headers({ authorization: "Basic abc" }))).toEqual({});
  });
});

describe("console sessions", () => {
  test("expire after SESSION_TTL_MS and can be ended", () => {
    let now = 1_000_000;
    const auth = new Authenticator("the-api-key", () => now);
    const { token } = auth.createSession();
    expect(auth.allows({ session: token })).toBe(true);
    expect(auth.allows({ session: token + "x" })).toBe(false);
    now += SESSION_TTL_MS + 1;
    expect(auth.allows({ session: token })).toBe(false);
    const second = auth.createSession().token;
    auth.endSession(second);
    expect(auth.allows({ session: second })).toBe(false);
  });
  test("with no key everything is allowed; with one, only the key or a session", () => {
    expect(new Authenticator(undefined).allows({})).toBe(true);
    const auth = new Authenticator("the-api-key");
    expect(auth.allows({})).toBe(false);
    expect(auth.allows({ key: "the-api-key" })).toBe(true);
    expect(auth.allows({ session: "the-api-key" })).toBe(false); // the key is not a session token
  });
});

describe("LoginThrottle", () => {
  test("locks an address out after `limit` failures until the window passes; others are unaffected", () => {
    let now = 0;
    const t = new LoginThrottle(3, 60_000, 100, () => now);
    for (let i = 0; i < 3; i++) t.fail("a");
    expect(t.retryAfterSeconds("a")).toBe(60);
    expect(t.retryAfterSeconds("b")).toBe(0);
    now = 30_000;
    expect(t.retryAfterSeconds("a")).toBe(30);
    now = 60_001;
    expect(t.retryAfterSeconds("a")).toBe(0);
  });
  test("tracks a bounded number of addresses", () => {
    const t = new LoginThrottle(1, 60_000, 10);
    for (let i = 0; i < 1000; i++) t.fail(`10.0.${i >> 8}.${i & 255}`);
    expect((t as unknown as { failures: Map<string, number[]> }).failures.size).toBe(10);
  });
});

describe("safeNextPath", () => {
  test.each([
    ["/models", "/models"],
    ["/models?x=1#y", "/models?x=1#y"],
    ["//evil.example", "/"],
    ["/\\evil.example", "/"],
    ["\\\\evil.example", "/"],
    ["https://evil.example", "/"],
    ["javascript:alert(1)", "/"],
    ["/\t/evil", "/"],
    ["/a/../../b", "/b"],
    [undefined, "/"],
    ["", "/"],
  ])("%p -> %p", (input, want) => {
    expect(safeNextPath(input)).toBe(want);
  });
});
