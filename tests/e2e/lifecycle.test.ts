/**
 * The lifecycle owner (src/supervisor/pool.ts) end to end with the fake llama-server: memory-based
 * eviction, /fit, the hooks other modules use (beforeStop, keep-alive, restart).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createApp } from "../../src/app";
import { ModelPool } from "../../src/supervisor/pool";
import { writeGguf, llamaModel, type LlamaShape } from "../fixtures/gguf-writer";
import { makeHarness, waitFor, type Harness } from "../fixtures/supervisor-harness";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const MiB = 1024 * 1024;
/** ~16 MiB of weights (the 32000-token vocabulary twice) + ~2 MiB compute and cache: ~18 MiB at a 512 context. */
const SMALL: LlamaShape = { layers: 2, embd: 64, heads: 4, kvHeads: 4 };

/**
 * Registers a model whose file is a real GGUF header (tensor infos, no data) of `shape`. The fake
 * llama-server then reports 16 + 1 + 1 MiB, about what the real one reports for SMALL (its
 * default, the file's size, would be a few KB for a header without data).
 */
function addShaped(harness: Harness, id: string, shape: LlamaShape, settings: { extraArgs?: string[]; [k: string]: unknown } = {}) {
  const path = join(harness.dir, `${id}.gguf`);
  writeGguf(path, llamaModel(shape));
  const extraArgs = settings.extraArgs ?? ["--fake-memory-mib", "16,1,1"];
  harness.services.registry.insert([{ id, name: id, path, size: 1, settings: { ...settings, extraArgs } }]);
  return path;
}

async function get(harness: Harness, path: string) {
  const res = await createApp(harness.services).request(path);
  return { status: res.status, body: (await res.json()) as any };
}

const state = (id: string) => h!.supervisor.runtimeOf(id)?.state ?? "stopped";

describe("memory decides what runs", () => {
  test("the second model evicts the first when both do not fit, and both stay when they do", async () => {
    h = await makeHarness({ config: { maxLoadedModels: 0, memoryLimitMiB: 30, ctx_size: 512 } });
    addShaped(h, "a", SMALL);
    addShaped(h, "b", SMALL);
    const need = h.services.memory.estimate(h.services.registry.get("a")!)!.totalBytes;
    expect(need).toBeGreaterThan(15 * MiB);
    expect(need).toBeLessThan(30 * MiB);
    await h.services.pool.start("a");
    await h.services.pool.start("b");
    expect(state("b")).toBe("running");
    expect(state("a")).toBe("stopped");
    expect(h.services.logs.query({ q: "to make room for b" }).at(-1)?.message).toContain("not enough free memory");

    h.services.config.update({ ...h.services.config.get(), memoryLimitMiB: 60 });
    await h.services.pool.start("a");
    expect(state("a")).toBe("running");
    expect(state("b")).toBe("running");
  });

  test("a model that can never fit is refused with the numbers (503), nothing is evicted", async () => {
    h = await makeHarness({ config: { maxLoadedModels: 0, memoryLimitMiB: 10, ctx_size: 512 } });
    addShaped(h, "big", SMALL);
    const res = await createApp(h.services).request("/api/models/big/start", { method: "POST", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(503);
    const body = (await res.json()) as any;
    expect(body.error.code).toBe("SERVICE_UNAVAILABLE");
    expect(body.error.message).toMatch(/does not fit: needs \d+ MiB of memory, at most 10 MiB available/);
    expect(state("big")).toBe("stopped");
  });

  test("a pinned model is never evicted: the newcomer is refused instead", async () => {
    h = await makeHarness({ config: { maxLoadedModels: 0, memoryLimitMiB: 30, ctx_size: 512 } });
    addShaped(h, "keep", SMALL, { pinned: true });
    addShaped(h, "other", SMALL);
    await h.services.pool.start("keep");
    const err = await h.services.pool.start("other").catch((e) => e);
    expect(String(err.message)).toContain("pinned models keep keep their memory");
    expect(state("keep")).toBe("running");
  });

  test("what llama-server reports is stored, shown, and counted instead of the estimate", async () => {
    h = await makeHarness({ config: { maxLoadedModels: 0, memoryLimitMiB: 50, ctx_size: 512 } });
    // The estimate says ~18 MiB; the server says 40 (as a real one would with a bigger compute buffer).
    addShaped(h, "a", SMALL, { extraArgs: ["--fake-memory-mib", "38,1,1"] });
    addShaped(h, "b", SMALL);
    await h.services.pool.start("a");
    const { body } = await get(h, "/api/models/a");
    expect(body.data.memory.measuredBytes).toBe(40 * MiB);
    expect(body.data.memory.estimatedBytes).toBeLessThan(25 * MiB);
    expect(body.data.placement.devices).toEqual([{ id: "host", bytes: 40 * MiB }]);
    // By the estimates both fit in 50 MiB; by what a really holds they do not.
    await h.services.pool.start("b");
    expect(state("a")).toBe("stopped");
    // Kept in SQLite, per model and settings: the next plan for a starts from 40 MiB.
    expect(h.services.memory.needOf(h.services.registry.get("a")!).hostBytes).toBe(40 * MiB);
    // The -lv 4 noise stays out of the log ring; the memory lines and the ordinary ones stay in.
    const lines = h.services.logs.query({ source: "llama-server:a" }).map((e) => e.message);
    expect(lines.some((l) => l.includes("model buffer size"))).toBe(true);
    expect(lines.some((l) => l.includes("listening on"))).toBe(true);
    expect(lines.some((l) => l.includes("llama_model_loader: - kv"))).toBe(false);
    expect(lines.some((l) => l.includes("common_memory_breakdown_print"))).toBe(false);
  });

  test("the launch passes --fit off, and the placement shows in the model", async () => {
    h = await makeHarness({ config: { maxLoadedModels: 0, ctx_size: 512 } });
    addShaped(h, "a", SMALL);
    await h.services.pool.start("a");
    const started = h.services.logs.query({ q: "Starting llama-server for a" }).at(-1)!;
    expect(JSON.stringify(started.metadata)).toContain('"--fit","off"');
    const { body } = await get(h, "/api/models/a");
    expect(body.data.placement.devices[0].id).toBe("host");
    expect(body.data.memory.estimatedBytes).toBeGreaterThan(15 * MiB);
    expect(body.data.memory.breakdown.kvBytes).toBe(2 * 512 * 64 * 2 * 2);
  });
});

describe("GET /api/models/:id/fit", () => {
  test("says whether it fits, what would be evicted and the largest context", async () => {
    h = await makeHarness({ config: { maxLoadedModels: 0, memoryLimitMiB: 30, ctx_size: 512 } });
    addShaped(h, "a", SMALL);
    addShaped(h, "b", { ...SMALL, ctx: 65536 });
    const alone = await get(h, "/api/models/b/fit");
    expect(alone.status).toBe(200);
    expect(alone.body.data).toMatchObject({ fits: true, evict: [], reason: "fits now" });
    expect(alone.body.data.devices[0]).toMatchObject({ id: "host", kind: "host", capacityBytes: 30 * MiB });
    await h.services.pool.start("a");
    const after = await get(h, "/api/models/b/fit");
    expect(after.body.data).toMatchObject({ fits: true, evict: ["a"], reason: "fits after stopping a" });
    expect(after.body.data.freeBytes).toBeLessThanOrEqual(12 * MiB);
    // The largest context: cache and mask grow 1.5 KiB per token on this shape.
    const max = after.body.data.maxContextSize as number;
    expect(max).toBeGreaterThan(512);
    expect(max).toBeLessThan(65536); // limited by memory here, not by the trained context
    expect(max % 256).toBe(0);
    const tooBig = await get(h, `/api/models/b/fit?ctxSize=${max + 256 * 64}`);
    expect(tooBig.body.data.fits).toBe(false);
    expect(tooBig.body.data.reason).toMatch(/needs \d+ MiB of memory/);
    const ok = await get(h, `/api/models/b/fit?ctxSize=${max}`);
    expect(ok.body.data.fits).toBe(true);
    expect(state("a")).toBe("running"); // asking starts and stops nothing
  });

  test("bad query values are a 400 in the envelope; an unknown model a 404", async () => {
    h = await makeHarness();
    addShaped(h, "a", SMALL);
    for (const q of ["ctxSize=abc", "ctxSize=-5", "gpuLayers=-2", "ctxSize=99999999999", "bogus=1"]) {
      const r = await get(h, `/api/models/a/fit?${q}`);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe("VALIDATION_ERROR");
    }
    expect((await get(h, "/api/models/nope/fit")).status).toBe(404);
  });

  test("behind the same Host rules as every route: a forged Host is refused", async () => {
    h = await makeHarness();
    addShaped(h, "a", SMALL);
    const app = createApp(h.services);
    const forged = await app.request("/api/models/a/fit", { headers: { host: "evil.example:3000" } });
    expect(forged.status).toBe(403);
    const viaUrl = await app.request("http://rebind.evil.example/api/models/a/fit");
    expect(viaUrl.status).toBe(403);
    expect((await app.request("/api/models/a/fit", { headers: { host: "127.0.0.1:3000" } })).status).toBe(200);
  });
});

describe("hooks", () => {
  test("beforeStop runs with the server still up, for every stop reason; a hung hook is cut at its deadline", async () => {
    h = await makeHarness();
    h.addModel("a");
    const pool = new ModelPool(
      { supervisor: () => h!.supervisor, registry: h.services.registry, config: () => h!.services.config.get(), memory: h.services.memory, log: h.services.log, bus: h.services.bus },
      { beforeStopDeadlineMs: 300 },
    );
    const seen: { reason: string; healthy: number }[] = [];
    const off = pool.onBeforeStop(async (id, ctx) => {
      const r = await fetch(`${ctx.baseUrl}/health`);
      seen.push({ reason: ctx.reason, healthy: r.status });
      expect(id).toBe("a");
    });
    await pool.start("a");
    await pool.stop("a");
    expect(seen).toEqual([{ reason: "user", healthy: 200 }]);
    off();
    let aborted = false;
    pool.onBeforeStop((_id, ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => ((aborted = true), resolve()))));
    await pool.start("a");
    const t0 = performance.now();
    await pool.stop("a");
    expect(aborted).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(state("a")).toBe("stopped");
    expect(seen).toHaveLength(1); // the removed hook did not run again
    pool.close();
  });

  test("keep-alive per request: 0 unloads after the request, N overrides the model's TTL", async () => {
    h = await makeHarness();
    h.addModel("a");
    const pool = h.services.pool;
    const lease = await pool.acquire("a", undefined, undefined, { keepAliveSeconds: 0 });
    expect(state("a")).toBe("running");
    lease.release();
    await waitFor(() => state("a") === "stopped", "the model to unload after its request");
    // idleTimeoutSeconds 0 (never) overridden by keep_alive 1 on the request.
    const l2 = await pool.acquire("a", undefined, undefined, { keepAliveSeconds: 1 });
    l2.release();
    await waitFor(() => state("a") === "stopped", "the model to stop after 1 idle second", 5000);
  });

  test("keep-alive -1 keeps a model whose TTL would stop it (a twin with the same TTL stops)", async () => {
    h = await makeHarness({ config: { maxLoadedModels: 0 } });
    h.addModel("kept", { idleTimeoutSeconds: 1 });
    h.addModel("twin", { idleTimeoutSeconds: 1 });
    const a = await h.services.pool.acquire("kept", undefined, undefined, { keepAliveSeconds: -1 });
    const b = await h.services.pool.acquire("twin");
    a.release();
    b.release();
    await waitFor(() => state("twin") === "stopped", "the twin to stop after its TTL", 5000);
    expect(state("kept")).toBe("running");
  });

  test("restart drains: the request in flight finishes, then a new process serves", async () => {
    h = await makeHarness();
    h.addModel("a", { extraArgs: ["--fake-token-delay-ms", "20"] });
    const pool = h.services.pool;
    const first = await pool.start("a");
    const lease = await pool.acquire("a");
    const restarted = pool.restart("a");
    // While draining, a new request waits for the new process.
    const waiting = pool.acquire("a");
    expect(state("a")).toBe("running");
    expect(pool.queued("a")).toBe(1);
    lease.release();
    const rt = await restarted;
    expect(rt.pid).not.toBe(first.pid);
    const l2 = await waiting;
    expect(l2.baseUrl).toBe(h.supervisor.runtimeOf("a")!.baseUrl!);
    l2.release();
  });

  test("restart when idle waits for the model's next idle moment, without draining", async () => {
    h = await makeHarness();
    h.addModel("a");
    const pool = h.services.pool;
    const first = await pool.start("a");
    const lease = await pool.acquire("a");
    let done = false;
    const restarted = pool.restart("a", { whenIdle: true }).then((rt) => ((done = true), rt));
    // Not draining: another request is served at once by the old process.
    const other = await pool.acquire("a");
    expect(other.baseUrl).toBe(first.baseUrl!);
    other.release();
    expect(done).toBe(false);
    lease.release();
    const rt = await restarted;
    expect(rt.pid).not.toBe(first.pid);
  });
});
