import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startServer } from "../../src/server";
import { waitFor } from "../helpers/services";
import { llamaModel, writeGguf } from "../fixtures/gguf-writer";
import { killAndWait, startListening } from "../helpers/process";

// #11 (faults): a shutdown (SIGTERM runs the same stop()) used to cut in-flight streams with no
// word to the client. Now each gets an SSE error event saying why before the socket closes.
const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");
const MAIN = resolve(import.meta.dir, "../../src/main.ts");

test("shutdown: an in-flight stream gets an SSE error event, not a cut connection", async () => {
  const dir = mkdtempSync(join(tmpdir(), "lap-shutdown-"));
  const srv = await startServer({
    port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"),
    logLevel: "error", environment: "test", quiet: true, databasePath: ":memory:",
  });
  try {
    srv.services.config.update({
      ...srv.services.config.get(), serverPath: FAKE, host: "127.0.0.1", port: 20000 + Math.floor(Math.random() * 20000),
      stopTimeoutSeconds: 2, maxRestarts: 0,
    });
    const file = join(dir, "slow.gguf");
    writeFileSync(file, "GGUF fake weights");
    srv.services.registry.insert([{ id: "slow", name: "slow", path: file, size: 17, family: "llama", format: "gguf", settings: { extraArgs: ["--fake-token-delay-ms", "40"] } }]);

    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "slow", stream: true, max_tokens: 500, messages: [{ role: "user", content: "go" }] }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    expect((await reader.read()).done).toBe(false); // the stream is flowing
    await waitFor(() => srv.services.tracker.list().some((r) => r.state === "running"), "the stream running");

    const stopped = srv.stop();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    await stopped;
    expect(rest).toContain('"code":"request_cancelled"');
    expect(rest).toContain("shutting down");
    expect(rest).not.toContain("[DONE]");
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);

test("SIGTERM to the real process: the stream gets the SSE error event, the child is stopped, exit 0", async () => {
  const dir = mkdtempSync(join(tmpdir(), "lap-sigterm-"));
  const configPath = join(dir, "config.json");
  writeFileSync(configPath, JSON.stringify({ serverPath: FAKE, host: "127.0.0.1", port: 20000 + Math.floor(Math.random() * 20000), basePath: dir, stopTimeoutSeconds: 2, maxRestarts: 0 }));
  const file = join(dir, "slow.gguf");
  writeGguf(file, llamaModel({ layers: 2, embd: 64, heads: 4, kvHeads: 4, ctx: 2048 }));
  const { proc, url, stderr } = await startListening([process.execPath, MAIN, "--port", "0", "--data-dir", dir, "--config", configPath], { cwd: dir });
  try {
    const json = { "content-type": "application/json" };
    const reg = await fetch(`${url}/api/models`, { method: "POST", headers: json, body: JSON.stringify({ models: [{ id: "slow", name: "slow", path: file, settings: { extraArgs: ["--fake-token-delay-ms", "40"] } }] }) });
    expect(reg.status).toBe(200);
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "slow", stream: true, max_tokens: 500, messages: [{ role: "user", content: "go" }] }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let seen = new TextDecoder().decode((await reader.read()).value);
    // A token has been relayed: the stream is flowing from llama-server through the proxy.
    while (!seen.includes('"content"')) seen += new TextDecoder().decode((await reader.read()).value);
    const child = (await (await fetch(`${url}/api/models/slow`)).json()).data;
    expect(child.status).toBe("running");

    proc.kill("SIGTERM");
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(await proc.exited).toBe(0);
    expect(rest).toContain('"code":"request_cancelled"');
    expect(rest).toContain("shutting down");
    expect(rest).not.toContain("[DONE]");
    await stderr.wait(/shutting down/);
    // The llama-server child went with it: its port no longer answers.
    await expect(fetch(`http://127.0.0.1:${child.port}/health`)).rejects.toThrow();
  } finally {
    await killAndWait(proc);
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
