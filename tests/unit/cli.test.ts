import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCli, UsageError } from "../../src/cli";

const dir = mkdtempSync(join(tmpdir(), "lap-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const run = (argv: string[], env: Record<string, string> = {}) => {
  const r = parseCli(argv, env);
  if (r.kind !== "run") throw new Error("expected run");
  return r.options;
};

describe("--allowed-hosts", () => {
  test("from the flag or ALLOWED_HOSTS, comma separated, the flag winning", () => {
    expect(run(["--allowed-hosts", "a.example, b.example:8443"]).allowedHosts).toEqual(["a.example", "b.example:8443"]);
    expect(run([], { ALLOWED_HOSTS: "lan.example" }).allowedHosts).toEqual(["lan.example"]);
    expect(run(["--allowed-hosts", "x.example"], { ALLOWED_HOSTS: "y.example" }).allowedHosts).toEqual(["x.example"]);
    expect(run([]).allowedHosts).toEqual([]);
  });
  test("an invalid entry is a usage error", () => {
    expect(() => run(["--allowed-hosts", "http://x/"])).toThrow(UsageError);
    expect(() => run(["--allowed-hosts", "x:70000"])).toThrow(UsageError);
  });
});

describe("--api-key-file", () => {
  test("reads the first line of the file, so the key never appears in ps", () => {
    const f = join(dir, "key");
    writeFileSync(f, "a-long-secret-key\n");
    expect(run(["--api-key-file", f]).apiKey).toBe("a-long-secret-key");
    expect(run([], { API_KEY_FILE: f }).apiKey).toBe("a-long-secret-key");
  });
  test("missing, empty or given twice: usage errors", () => {
    expect(() => run(["--api-key-file", join(dir, "nope")])).toThrow(/Cannot read/);
    const empty = join(dir, "empty");
    writeFileSync(empty, "\n");
    expect(() => run(["--api-key-file", empty])).toThrow(/empty/);
    const f = join(dir, "key2");
    writeFileSync(f, "a-long-secret-key");
    expect(() => run(["--api-key-file", f, "--api-key", "another-long-key"])).toThrow(/one way/);
  });
  test("API_KEY from the environment still works", () => {
    expect(run([], { API_KEY: "env-key-12345" }).apiKey).toBe("env-key-12345");
  });
});
