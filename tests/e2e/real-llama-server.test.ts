/**
 * The supervisor against a real llama-server. Runs when LLAMA_SERVER_BIN and LLAMA_TEST_MODEL
 * are set (shared/tools/build-llama-server.sh prints both); skips with a message otherwise.
 *
 *   LLAMA_SERVER_BIN=~/.cache/llama-async-proxy/llama.cpp/bin/llama-server \
 *   LLAMA_TEST_MODEL=~/.cache/llama-async-proxy/llama.cpp/models/tiny-llama.gguf \
 *   bun test tests/e2e/real-llama-server.test.ts
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { childAuthHeaders } from "../../src/supervisor/child-keys";
import { symlinkSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../../src/app";
import type { AppEvents } from "../../src/events";
import { listModels } from "../../src/models/view";
import { isAlive, makeHarness, processesMentioning, waitFor, type Harness } from "../fixtures/supervisor-harness";

const BIN = process.env.LLAMA_SERVER_BIN;
const MODEL = process.env.LLAMA_TEST_MODEL;
const enabled = Boolean(BIN && MODEL);
if (!enabled) {
  console.log(
    "SKIP real-llama-server: set LLAMA_SERVER_BIN and LLAMA_TEST_MODEL (run shared/tools/build-llama-server.sh; it prints both) to run it",
  );
}

describe.skipIf(!enabled)("real llama-server", () => {
  let h: Harness;
  const events: AppEvents["model.status"][] = [];
  const modelOf = (id: string) => listModels(h.services).find((m) => m.id === id)!;

  beforeAll(async () => {
    h = await makeHarness({ config: { serverPath: BIN!, ctx_size: 512, batch_size: 128, threads: 2, gpu_layers: 0, restartDelayMs: 200 } });
    // The model is reached through a link inside the harness dir, so the stray check (argv
    // containing the dir) covers the real processes too.
    const link = join(h.dir, "tiny.gguf");
    symlinkSync(MODEL!, link);
    h.services.registry.insert([{ id: "tiny", name: "tiny", path: link, size: 0, settings: {} }]);
    h.services.bus.on("model.status", (e) => events.push(e));
  });
  afterAll(async () => {
    await h?.close();
  });

  test("starts: POST /api/models/tiny/start answers when /health is 200, and GET-side view shows it running", async () => {
    const app = createApp(h.services);
    const t0 = performance.now();
    const res = await app.request("/api/models/tiny/start", { method: "POST", headers: { "content-type": "application/json" } });
    const body = (await res.json()) as any;
    console.log(`real llama-server start took ${Math.round(performance.now() - t0)} ms`);
    expect(res.status).toBe(200);
    expect(body.data).toMatchObject({ id: "tiny", status: "running", contextSize: 512 });
    expect(body.data.memoryUsage).toBeGreaterThan(1);
    const m = modelOf("tiny");
    expect(m.status).toBe("running");
    expect(m.loadedAt).toBeDefined();
    const logs = h.services.logs.query({ source: "llama-server:tiny" });
    expect(logs.some((e) => /listening/.test(e.message))).toBe(true);
    console.log("first real log lines:\n" + logs.slice(0, 12).map((e) => `  [${e.level}] ${e.message}`).join("\n"));
  }, 120_000);

  test("serves: chat completion through the model's port", async () => {
    const rt = h.supervisor.runtimeOf("tiny")!;
    const res = await fetch(`${rt.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...childAuthHeaders(rt.baseUrl!) },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 4, temperature: 0 }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.object).toBe("chat.completion");
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    const props = (await (await fetch(`${rt.baseUrl}/props`, { headers: childAuthHeaders(rt.baseUrl!) })).json()) as any;
    expect(props.model_alias ?? props.model_path).toBeDefined();
  }, 60_000);

  test("crashes (kill -9) and comes back on its own", async () => {
    const before = h.supervisor.runtimeOf("tiny")!;
    process.kill(before.pid!, "SIGKILL");
    await waitFor(() => modelOf("tiny").status === "error", "the crash to show as error", 10_000);
    expect(modelOf("tiny").error?.signal).toBe("SIGKILL");
    const after = await waitFor(() => {
      const rt = h.supervisor.runtimeOf("tiny")!;
      return rt.state === "running" && rt.pid !== before.pid ? rt : undefined;
    }, "the restart", 60_000, 25);
    expect(after.restarts).toBe(1);
    expect(isAlive(before.pid!)).toBe(false);
    expect(modelOf("tiny").status).toBe("running");
    expect(h.services.logs.query({ source: "proxy", q: "exited unexpectedly (killed by SIGKILL)" }).length).toBe(1);
  }, 90_000);

  test("stops: SIGTERM ends it cleanly, no process left", async () => {
    const { pid } = h.supervisor.runtimeOf("tiny")!;
    const t0 = performance.now();
    const res = await createApp(h.services).request("/api/models/tiny/stop", { method: "POST", headers: { "content-type": "application/json" } });
    console.log(`real llama-server stop took ${Math.round(performance.now() - t0)} ms`);
    expect(res.status).toBe(200);
    expect(modelOf("tiny").status).toBe("stopped");
    expect(isAlive(pid!)).toBe(false);
    expect(processesMentioning(h.dir)).toEqual([]);
    expect(h.services.logs.query({ source: "proxy", q: "Model tiny stopped" }).at(-1)?.message).not.toContain("SIGKILL");
    console.log("status sequence: " + events.map((e) => e.state).join(" -> "));
  }, 60_000);

  test("early exit: a file that is not a model fails the start with llama-server's reason", async () => {
    const bad = join(h.dir, "not-a-model.gguf");
    await Bun.write(bad, "this is not gguf");
    h.services.registry.insert([{ id: "bad", name: "bad", path: bad, size: 16, settings: {} }]);
    const res = await createApp(h.services).request("/api/models/bad/start", { method: "POST", headers: { "content-type": "application/json" } });
    const body = (await res.json()) as any;
    expect(res.status).toBe(503);
    expect(body.error.message).toContain("exited while loading");
    console.log("bad model error: " + body.error.message + "\n  " + String(body.error.details).split("\n").slice(-4).join("\n  "));
    await h.supervisor.stop("bad");
  }, 60_000);
});
