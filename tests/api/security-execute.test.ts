// What we execute (issue #11): serverPath must be a llama-server, extraArgs may not carry
// dangerous flags (finding 3), and only GGUF files are models (finding 4). Through the routes
// (app.request) and the console's form, with real files.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeModel } from "../fixtures/gguf-writer";
import { FAKE_LLAMA_SERVER, jsonRequest, makeTestServices, type TestContext } from "../helpers/services";

let t: TestContext;
beforeEach(() => {
  t = makeTestServices();
});
afterEach(async () => {
  await t.cleanup();
});

const postConfig = (patch: Record<string, unknown>) => t.app.request("/api/config", jsonRequest("POST", { ...t.services.config.get(), ...patch }));

describe("finding 1 (the chain's second step): serverPath chooses what we execute", () => {
  test("anything that does not answer --version like llama-server is a VALIDATION_ERROR naming serverPath, and nothing is saved", async () => {
    // The chain from the report: the config file itself, /bin/sh; and other programs.
    writeFileSync(t.services.config.path, JSON.stringify(t.services.config.get()));
    const script = join(t.dir, "evil.sh");
    writeFileSync(script, "#!/bin/sh\necho not llama-server\n");
    chmodSync(script, 0o755);
    const noExec = join(t.dir, "llama-server");
    writeFileSync(noExec, "#!/bin/sh\n");
    chmodSync(noExec, 0o644);
    const before = readFileSync(t.services.config.path, "utf8");
    for (const serverPath of ["/bin/sh", "/usr/bin/env", "bash", process.execPath, t.services.config.path, script, noExec, join(t.dir, "missing")]) {
      const res = await postConfig({ serverPath });
      expect(`${serverPath}: ${res.status}`).toBe(`${serverPath}: 400`);
      const body = (await res.json()) as any;
      expect(body.error.code).toBe("VALIDATION_ERROR");
      expect(body.error.details).toStartWith("serverPath: ");
      expect(t.services.config.get().serverPath).not.toBe(serverPath);
    }
    expect(readFileSync(t.services.config.path, "utf8")).toBe(before);
  });

  test("a real (here: the fake) llama-server and a wrapper script that passes its arguments on are accepted", async () => {
    expect((await postConfig({ serverPath: FAKE_LLAMA_SERVER })).status).toBe(200);
    const wrapper = join(t.dir, "llama-wrapper");
    writeFileSync(wrapper, `#!/bin/sh\nexport FOO=1\nexec "${FAKE_LLAMA_SERVER}" "$@"\n`);
    chmodSync(wrapper, 0o755);
    expect((await postConfig({ serverPath: wrapper })).status).toBe(200);
    expect(t.services.config.get().serverPath).toBe(wrapper);
    // Saving other fields with the serverPath unchanged does not re-run it.
    expect((await postConfig({ ctx_size: 4096 })).status).toBe(200);
  });

  test("the console's settings form gets the same check, shown next to the field", async () => {
    const before = t.services.config.get().serverPath;
    const fields: Record<string, string> = {};
    for (const [k, v] of Object.entries(t.services.config.get())) fields[k] = String(v);
    fields.serverPath = "/bin/sh";
    const res = await t.app.request("/ui/settings", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: "http://localhost", "hx-request": "true" },
      body: new URLSearchParams(fields).toString(),
    });
    const html = await res.text();
    expect(html).toContain("does not answer --version like llama-server");
    // POST /api/config's refusal (reached through the typed client) lands next to its field.
    expect(html).toMatch(/<small id="cfg-serverPath-error" class="field-error" data-field-error="serverPath">[^<]*does not answer --version like llama-server/);
    expect(html).toMatch(/<input id="cfg-serverPath" name="serverPath" value="\/bin\/sh"[^>]*aria-invalid="true"/);
    expect(t.services.config.get().serverPath).toBe(before);
  });
});

describe("finding 3: dangerous llama-server flags pass through extraArgs", () => {
  const model = () => {
    const file = join(t.dir, "m.gguf");
    writeModel(file, { arch: "llama" });
    t.services.registry.insert([{ id: "m", name: "m", path: file, family: "llama", size: 1000, settings: {} }]);
  };

  test("PATCH and register refuse them with the flag and the reason; nothing is saved", async () => {
    model();
    for (const extraArgs of [["--tools", "exec_shell_command"], ["--path", "/"], ["--api-key=x"], ["--log-file", "/root/.bashrc"], ["--video-ffmpeg-dir", "/tmp"]]) {
      const res = await t.app.request("/api/models/m", jsonRequest("PATCH", { settings: { extraArgs } }));
      expect(res.status).toBe(400);
      const details = ((await res.json()) as any).error.details as string;
      expect(details).toContain(`may not set ${extraArgs[0]!.split("=")[0]}`);
    }
    expect(t.services.registry.get("m")!.settings.extraArgs).toBeUndefined();
    const file = join(t.dir, "n.gguf");
    writeModel(file, { arch: "llama" });
    const reg = await t.app.request("/api/models", jsonRequest("POST", { models: [{ path: file, settings: { extraArgs: ["--tools", "all"] } }] }));
    expect(reg.status).toBe(400);
    expect(t.services.registry.list().map((r) => r.id)).toEqual(["m"]);
  });

  test("a row that already holds one (an old database) cannot start: the start names the flag, nothing is spawned", async () => {
    const file = join(t.dir, "old.gguf");
    writeModel(file, { arch: "llama" });
    t.services.config.update({ ...t.services.config.get(), serverPath: FAKE_LLAMA_SERVER, host: "127.0.0.1", port: 21000 + Math.floor(Math.random() * 20000) });
    t.services.registry.insert([{ id: "old", name: "old", path: file, family: "llama", size: 1000, settings: { extraArgs: ["--tools", "exec_shell_command"] } }]);
    const res = await t.app.request("/api/models/old/start", jsonRequest("POST", {}));
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(JSON.stringify(await res.json())).toContain("may not set --tools");
    expect(t.services.supervisor.runtimeOf("old")?.pid).toBeUndefined();
  });
});

describe("finding 4: any file registers as a model", () => {
  test("files that do not start with the GGUF magic are a VALIDATION_ERROR, all or nothing", async () => {
    writeFileSync(t.services.config.path, JSON.stringify(t.services.config.get()));
    const textGguf = join(t.dir, "notes.gguf");
    writeFileSync(textGguf, "hello, not a model");
    const bin = join(t.dir, "old.bin");
    writeFileSync(bin, Buffer.alloc(4096, 7));
    mkdirSync(join(t.dir, "split"));
    writeModel(join(t.dir, "split/big-00001-of-00002.gguf"), { arch: "llama", split: { no: 0, count: 2 } });
    writeFileSync(join(t.dir, "split/big-00002-of-00002.gguf"), "#!/bin/sh\nnot a shard\n");
    for (const path of ["/etc/passwd", "/proc/self/mem", t.services.config.path, textGguf, bin, FAKE_LLAMA_SERVER, join(t.dir, "split/big-00001-of-00002.gguf")]) {
      const res = await t.app.request("/api/models", jsonRequest("POST", { models: [{ path }] }));
      expect(`${path}: ${res.status}`).toBe(`${path}: 400`);
      const body = (await res.json()) as any;
      expect(body.error.code).toBe("VALIDATION_ERROR");
    }
    expect(t.services.registry.list()).toEqual([]);
  });

  test("discovery lists them in `skipped` with the reason, and registers only the GGUF ones", async () => {
    const dir = join(t.dir, "models");
    mkdirSync(dir);
    writeModel(join(dir, "good-Q4_K_M.gguf"), { arch: "llama" });
    writeFileSync(join(dir, "fake.gguf"), "#!/bin/sh\nid\n");
    writeFileSync(join(dir, "weights.bin"), Buffer.alloc(100, 1));
    const res = await t.app.request("/api/models/discover", jsonRequest("POST", { paths: [dir], includePatterns: ["*.gguf", "*.bin"] }));
    expect(res.status).toBe(200);
    const data = ((await res.json()) as any).data;
    expect(data.discovered.map((m: { name: string }) => m.name)).toEqual(["good-Q4_K_M"]);
    const skipped = data.skipped.map((x: { path: string }) => x.path).sort();
    expect(skipped).toEqual([join(dir, "fake.gguf"), join(dir, "weights.bin")]);
    for (const s of data.skipped) expect(s.reason).toContain("not a GGUF file");
    expect(existsSync(join(dir, "good-Q4_K_M.gguf"))).toBe(true);
  });
});
