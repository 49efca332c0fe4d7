import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startServer } from "../../src/server";
import { waitFor } from "../helpers/services";

// #11 (faults): a shutdown (SIGTERM runs the same stop()) used to cut in-flight streams with no
// word to the client. Now each gets an SSE error event saying why before the socket closes.
const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");

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
