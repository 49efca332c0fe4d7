import { describe, expect, test } from "bun:test";
import { checkRpcBindAddress } from "../../src/rpc/address";

describe("checkRpcBindAddress: rpc-server may bind loopback and private addresses only", () => {
  const cases: Array<[string, boolean]> = [
    ["127.0.0.1", true], ["127.1.2.3", true], ["localhost", true], ["::1", true], ["[::1]", true],
    ["10.0.0.5", true], ["172.16.0.1", true], ["172.31.255.255", true], ["192.168.1.20", true], ["100.64.0.1", true], ["169.254.1.1", true],
    ["fd12:3456::1", true], ["fe80::1", true],
    ["0.0.0.0", false], ["::", false], ["8.8.8.8", false], ["172.32.0.1", false], ["172.15.0.1", false], ["192.169.0.1", false],
    ["100.128.0.1", false], ["2001:db8::1", false], ["rpc.example.com", false], ["", false],
  ];
  for (const [host, ok] of cases) {
    test(`${host || "(empty)"} -> ${ok ? "allowed" : "refused"}`, () => {
      const v = checkRpcBindAddress(host);
      expect(v.ok).toBe(ok);
      if (!v.ok) expect(v.reason.length).toBeGreaterThan(10);
    });
  }
});
