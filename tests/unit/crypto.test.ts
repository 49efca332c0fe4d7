import { describe, expect, test } from "bun:test";
import { createHash, timingSafeEqual as nodeTimingSafeEqual } from "node:crypto";
import { randomToken, sha256, sha256Hex, timingSafeEqual } from "../../src/crypto";

// src/crypto.ts stands in for node:crypto in the process: the same answers, checked against it.
describe("crypto", () => {
  test.each(["", "abc", "lap-" + "x".repeat(43), "ünïcödé \u0000 end"])("sha256 of %p is node:crypto's", (text) => {
    expect(sha256Hex(text)).toBe(createHash("sha256").update(text).digest("hex"));
    expect(Buffer.from(sha256(text)).equals(createHash("sha256").update(text).digest())).toBe(true);
    const bytes = new TextEncoder().encode(text);
    expect(sha256Hex(bytes)).toBe(createHash("sha256").update(bytes).digest("hex"));
  });

  test("the known SHA-256 of 'abc'", () => {
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  test("random tokens: base64url of the asked length, never the same twice", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const t = randomToken(32);
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(t, "base64url").length).toBe(32);
      seen.add(t);
    }
    expect(seen.size).toBe(200);
    expect(randomToken(15)).toMatch(/^[A-Za-z0-9_-]{20}$/);
  });

  test("timingSafeEqual agrees with node:crypto's, and refuses different lengths the same way", () => {
    const a = sha256("one"), b = sha256("two");
    expect(timingSafeEqual(a, sha256("one"))).toBe(true);
    expect(timingSafeEqual(a, b)).toBe(nodeTimingSafeEqual(a, b));
    expect(() => timingSafeEqual(a, a.subarray(1))).toThrow();
    expect(() => nodeTimingSafeEqual(a, a.subarray(1))).toThrow();
  });
});
