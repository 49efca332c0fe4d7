/**
 * The supervisor against real processes (the fake llama-server on real ports). Each test names
 * the behaviour it protects. Every harness asserts on close that no process it spawned survives.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { childAuthHeaders } from "../../src/supervisor/child-keys";
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AppEvents } from "../../src/events";
import { ApiError } from "../../src/http/errors";
import { PortAllocator } from "../../src/supervisor/ports";
import { isAlive, makeHarness, processesMentioning, waitFor, type Harness } from "../fixtures/supervisor-harness";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function recordStatus(harness: Harness) {
  const events: AppEvents["model.status"][] = [];
  harness.services.bus.on("model.status", (e) => events.push(e));
  return events;
}

async function expectApiError(p: Promise<unknown>, code: string): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe(code as ApiError["code"]);
    return err as ApiError;
  }
  throw new Error("expected the promise to reject");
}

describe("start and stop", () => {
  test("start goes stopped -> loading -> running and the server answers; stop goes -> stopping -> stopped and the process is gone", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-load-ms", "150"] });
    const events = recordStatus(h);
    const info = await h.supervisor.start("m1");
    expect(info.state).toBe("running");
    expect(info.status).toBe("running");
    expect(info.port).toBeGreaterThanOrEqual(h.services.config.get().port);
    expect(info.loadedAt).toBeDefined();
    expect(info.contextSize).toBe(512); // from the server's /props (config ctx_size 512)
    expect(info.memoryUsage).toBeGreaterThan(0);
    const health = await fetch(`${info.baseUrl}/health`);
    expect(await health.json()).toEqual({ status: "ok" });
    const pid = info.pid!;
    expect(isAlive(pid)).toBe(true);

    await h.supervisor.stop("m1");
    expect(isAlive(pid)).toBe(false);
    const after = h.supervisor.runtimeOf("m1")!;
    expect(after.state).toBe("stopped");
    expect(after.pid).toBeUndefined();
    expect(after.port).toBeUndefined();
    expect(events.map((e) => e.state)).toEqual(["loading", "running", "stopping", "stopped"]);
  });

  test("the child's output lands in the log buffer with its source and level", async () => {
    h = await makeHarness();
    h.addModel("m1");
    await h.supervisor.start("m1");
    const lines = h.services.logs.query({ source: "llama-server:m1" });
    expect(lines.some((e) => e.message.includes("I srv  llama_server: listening on http://127.0.0.1:"))).toBe(true);
    expect(lines.every((e) => e.source === "llama-server:m1")).toBe(true);
    // Every child has its own key, so llama-server's "no API key is set" warning never appears.
    expect(lines.some((e) => e.message.includes("no API key is set"))).toBe(false);
    // Levels come from llama-server's I/W/E markers: a request without the key logs a W line.
    const rt = h.supervisor.runtimeOf("m1")!;
    expect((await fetch(`${rt.baseUrl}/props`)).status).toBe(401);
    await waitFor(() => h!.services.logs.query({ source: "llama-server:m1", q: "unauthorized" }).length > 0, "the W line");
    expect(h.services.logs.query({ source: "llama-server:m1", q: "unauthorized" })[0]!.level).toBe("warn");
    expect(lines.find((e) => e.message.includes("model loaded"))?.level).toBe("info");
    expect(h.services.logs.query({ source: "proxy", q: "is ready on port" }).length).toBe(1);
  });

  test("readiness comes from /health, not only from the log line", async () => {
    h = await makeHarness();
    // The log line comes 5 s after /health turns 200; start must not wait for it.
    h.addModel("m1", { extraArgs: ["--fake-load-ms", "50", "--fake-ready-log-delay-ms", "5000"] });
    const t0 = performance.now();
    await h.supervisor.start("m1");
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  test("stop is idempotent and stopping an unknown or never-started model is a no-op", async () => {
    h = await makeHarness();
    h.addModel("m1");
    await h.supervisor.stop("m1");
    await h.supervisor.stop("nope");
    await h.supervisor.start("m1");
    await Promise.all([h.supervisor.stop("m1"), h.supervisor.stop("m1")]);
    await h.supervisor.stop("m1");
    expect(h.supervisor.runtimeOf("m1")!.state).toBe("stopped");
  });

  test("start of an unknown model is NOT_FOUND", async () => {
    h = await makeHarness();
    await expectApiError(h.supervisor.start("ghost"), "NOT_FOUND");
  });

  test("two models run side by side on different ports", async () => {
    h = await makeHarness();
    h.addModel("a");
    h.addModel("b");
    const [a, b] = await Promise.all([h.supervisor.start("a"), h.supervisor.start("b")]);
    expect(a.port).not.toBe(b.port);
    expect(h.supervisor.runtimes().filter((r) => r.state === "running").length).toBe(2);
  });
});

describe("concurrency", () => {
  test("a second start while loading joins the same load: one process is spawned", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-load-ms", "300"] });
    const events = recordStatus(h);
    const results = await Promise.all([h.supervisor.start("m1"), h.supervisor.start("m1"), h.supervisor.start("m1")]);
    expect(new Set(results.map((r) => r.pid)).size).toBe(1);
    expect(events.filter((e) => e.state === "loading").length).toBe(1);
    expect(processesMentioning(h.dir).length).toBe(1);
  });

  test("stop while loading cancels the load at once: the start fails, the process is gone", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-hang"] });
    const starting = h.supervisor.start("m1");
    await waitFor(() => h!.supervisor.runtimeOf("m1")?.pid, "the child to be spawned");
    const pid = h.supervisor.runtimeOf("m1")!.pid!;
    const t0 = performance.now();
    await h.supervisor.stop("m1");
    expect(performance.now() - t0).toBeLessThan(3000);
    const err = await expectApiError(starting, "SERVICE_UNAVAILABLE");
    expect(err.message).toContain("cancelled");
    expect(isAlive(pid)).toBe(false);
    expect(h.supervisor.runtimeOf("m1")!.state).toBe("stopped");
  });

  test("a stop issued in the same tick as the start ends stopped, never stuck in loading", async () => {
    h = await makeHarness();
    h.addModel("m1");
    const starting = h.supervisor.start("m1");
    expect(h.supervisor.runtimeOf("m1")!.state).toBe("loading"); // shown at once
    await h.supervisor.stop("m1");
    await expectApiError(starting, "SERVICE_UNAVAILABLE");
    expect(h.supervisor.runtimeOf("m1")!.state).toBe("stopped");
    expect(processesMentioning(h.dir)).toEqual([]);
  });

  test("start, stop, start issued together end running with exactly one process", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-load-ms", "100"] });
    const a = h.supervisor.start("m1").catch((e) => e);
    const b = h.supervisor.stop("m1");
    const c = h.supervisor.start("m1");
    await Promise.all([a, b]);
    const info = await c;
    expect(info.state).toBe("running");
    expect(processesMentioning(h.dir)).toEqual([info.pid!]);
  });
});

describe("load failures", () => {
  test("early exit during load fails at once with the exit code and the last log lines", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-load-ms", "50", "--fake-fail-load", "--fake-exit-code", "3"] });
    const t0 = performance.now();
    const err = await expectApiError(h.supervisor.start("m1"), "SERVICE_UNAVAILABLE");
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(err.message).toContain("exit code 3");
    expect(err.details).toContain("exiting due to model loading error");
    const rt = h.supervisor.runtimeOf("m1")!;
    expect(rt.status).toBe("error");
    expect(rt.error?.exitCode).toBe(3);
    expect(rt.error?.logTail?.at(-1)).toContain("exiting due to model loading error");
    expect(h.services.logs.query({ source: "llama-server:m1", level: "error" }).some((e) => e.message.includes("failed to load model"))).toBe(true);
    expect(rt.pid).toBeUndefined();
  });

  test("a load that never becomes healthy is stopped at the deadline and reported", async () => {
    h = await makeHarness({ timings: { loadTimeoutMs: 400 } });
    h.addModel("m1", { extraArgs: ["--fake-hang"] });
    const t0 = performance.now();
    const err = await expectApiError(h.supervisor.start("m1"), "SERVICE_UNAVAILABLE");
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(390);
    expect(took).toBeLessThan(4000);
    expect(err.message).toContain("did not become healthy within 0.4 s");
    expect(err.details).toContain("loading model");
    expect(processesMentioning(h.dir)).toEqual([]);
    expect(h.supervisor.runtimeOf("m1")!.state).toBe("error");
  });

  test("missing binary: clear error, the model shows it, nothing crashes", async () => {
    h = await makeHarness({ config: { serverPath: "/nonexistent/llama-server" } });
    h.addModel("m1");
    const err = await expectApiError(h.supervisor.start("m1"), "SERVICE_UNAVAILABLE");
    expect(err.message).toContain("llama-server not found: /nonexistent/llama-server does not exist");
    expect(h.supervisor.runtimeOf("m1")!.error?.message).toContain("does not exist");
    expect(h.supervisor.runtimeOf("m1")!.status).toBe("error");
  });

  test("binary not executable: clear error", async () => {
    h = await makeHarness();
    const bin = join(h.dir, "llama-server");
    writeFileSync(bin, "#!/bin/sh\n");
    chmodSync(bin, 0o644);
    h.services.config.update({ ...h.services.config.get(), serverPath: bin });
    h.addModel("m1");
    const err = await expectApiError(h.supervisor.start("m1"), "SERVICE_UNAVAILABLE");
    expect(err.message).toContain("not executable");
  });

  test("model file missing: clear error naming the file", async () => {
    h = await makeHarness();
    const path = h.addModel("m1");
    rmSync(path);
    const err = await expectApiError(h.supervisor.start("m1"), "SERVICE_UNAVAILABLE");
    expect(err.message).toContain(`Model file not found or not readable: ${path}`);
  });

  test("a failed model can be started again once fixed, and stop clears the error", async () => {
    h = await makeHarness();
    const path = h.addModel("m1");
    rmSync(path);
    await expectApiError(h.supervisor.start("m1"), "SERVICE_UNAVAILABLE");
    await h.supervisor.stop("m1");
    expect(h.supervisor.runtimeOf("m1")!.state).toBe("stopped");
    expect(h.supervisor.runtimeOf("m1")!.error).toBeUndefined();
    writeFileSync(path, "GGUF");
    expect((await h.supervisor.start("m1")).state).toBe("running");
  });

  test("a port taken between our check and the child's bind: retried on the next port", async () => {
    // An allocator that believes every port is free reproduces the race deterministically.
    h = await makeHarness({ ports: new PortAllocator(() => true) });
    const base = h.services.config.get().port;
    const squatter = Bun.serve({ hostname: "127.0.0.1", port: base, fetch: () => new Response("not llama") });
    try {
      h.addModel("m1");
      const info = await h.supervisor.start("m1");
      expect(info.port).toBe(base + 1);
      expect(h.services.logs.query({ source: "llama-server:m1", q: "couldn't bind" }).length).toBe(1);
      expect(h.services.logs.query({ source: "proxy", q: `Port ${base} was taken` }).length).toBe(1);
    } finally {
      squatter.stop(true);
    }
  });

  test("a busy base port is skipped", async () => {
    h = await makeHarness();
    const base = h.services.config.get().port;
    const squatter = Bun.serve({ hostname: "127.0.0.1", port: base, fetch: () => new Response("not llama") });
    try {
      h.addModel("m1");
      const info = await h.supervisor.start("m1");
      expect(info.port).toBeGreaterThan(base);
      expect((await fetch(`${info.baseUrl}/health`)).status).toBe(200);
    } finally {
      squatter.stop(true);
    }
  });
});

describe("stopping", () => {
  test("a child that ignores SIGTERM is killed with SIGKILL after the grace period", async () => {
    h = await makeHarness({ timings: { stopGraceMs: 300 } });
    h.addModel("m1", { extraArgs: ["--fake-ignore-sigterm"] });
    const { pid } = await h.supervisor.start("m1");
    const t0 = performance.now();
    await h.supervisor.stop("m1");
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(3000);
    expect(isAlive(pid!)).toBe(false);
    expect(h.services.logs.query({ source: "proxy", q: "SIGKILL after the grace period" }).length).toBe(1);
    // SIGTERM, a second SIGTERM after 150 ms (half the grace), then SIGKILL.
    expect(h.services.logs.query({ source: "llama-server:m1", q: "ignoring" }).length).toBe(2);
  });

  test("a lost first SIGTERM (llama-server's ready-before-main-loop race) is repeated, not waited out to SIGKILL", async () => {
    h = await makeHarness({ timings: { stopGraceMs: 5000 } });
    h.addModel("m1", { extraArgs: ["--fake-lose-first-sigterm"] });
    const { pid } = await h.supervisor.start("m1");
    const t0 = performance.now();
    await h.supervisor.stop("m1");
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(isAlive(pid!)).toBe(false);
    expect(h.services.logs.query({ source: "llama-server:m1", q: "Received second interrupt" }).length).toBe(1);
    expect(h.services.logs.query({ source: "proxy", q: "SIGKILL" }).length).toBe(0);
  });

  test("stopAll stops every model and refuses new starts", async () => {
    h = await makeHarness();
    h.addModel("a");
    h.addModel("b");
    await Promise.all([h.supervisor.start("a"), h.supervisor.start("b")]);
    await h.supervisor.stopAll();
    expect(processesMentioning(h.dir)).toEqual([]);
    await expectApiError(h.supervisor.start("a"), "SERVICE_UNAVAILABLE");
  });
});

describe("crashes", () => {
  test("a crashed model goes to error, is logged, and is restarted", async () => {
    h = await makeHarness();
    h.addModel("m1", { extraArgs: ["--fake-crash-after", "1"] });
    const events = recordStatus(h);
    const first = await h.supervisor.start("m1");
    const res = await fetch(`${first.baseUrl}/completion`, { method: "POST", headers: childAuthHeaders(first.baseUrl!), body: JSON.stringify({ prompt: "hi", n_predict: 2 }) });
    expect(res.status).toBe(200);
    await res.text();
    await waitFor(() => events.some((e) => e.state === "error"), "the crash to be noticed");
    const crashed = events.find((e) => e.state === "error")!;
    expect(crashed.detail).toContain("killed by SIGKILL");
    const restarted = await waitFor(() => {
      const rt = h!.supervisor.runtimeOf("m1")!;
      return rt.state === "running" && rt.pid !== first.pid ? rt : undefined;
    }, "the restart");
    expect(restarted.restarts).toBe(1);
    expect(isAlive(first.pid!)).toBe(false);
    expect(events.map((e) => e.state)).toEqual(["loading", "running", "error", "error", "loading", "running"]);
    expect(h.services.logs.query({ source: "proxy", level: "error", q: "exited unexpectedly" }).length).toBe(1);
    expect(h.services.logs.query({ source: "llama-server:m1", q: "GGML_ASSERT" }).length).toBe(1);
  });

  test("a server that stops answering (SIGSTOP) is detected by the background check, killed and restarted", async () => {
    h = await makeHarness({ timings: { healthCheckIntervalMs: 100, hungAfterChecks: 3 } });
    h.addModel("m1");
    const first = await h.supervisor.start("m1");
    // Frozen, not dead: the process exists but answers nothing, like a deadlocked server.
    process.kill(first.pid!, "SIGSTOP");
    const restarted = await waitFor(() => {
      const rt = h!.supervisor.runtimeOf("m1")!;
      return rt.state === "running" && rt.pid !== first.pid ? rt : undefined;
    }, "the hung server to be replaced", 10_000);
    expect(restarted.restarts).toBe(1);
    expect(isAlive(first.pid!)).toBe(false);
    expect(h.services.logs.query({ source: "proxy", level: "warn", q: "/health did not answer 200 (3/3)" }).length).toBe(1);
    expect(h.services.logs.query({ source: "proxy", level: "error", q: "stopped answering" }).length).toBe(1);
    const res = await fetch(`${restarted.baseUrl}/health`);
    expect(res.status).toBe(200);
  });

  test("restarts back off exponentially and give up after maxRestarts in a row", async () => {
    h = await makeHarness({ config: { restartDelayMs: 100, restartMaxDelayMs: 250, maxRestarts: 3 } });
    const path = h.addModel("m1", { extraArgs: ["--fake-crash-after", "1"] });
    const loadingAt: number[] = [];
    h.services.bus.on("model.status", (e) => {
      if (e.state === "loading") loadingAt.push(performance.now());
    });
    const first = await h.supervisor.start("m1");
    rmSync(path); // every restart now fails its preflight: a crash loop without processes
    await (await fetch(`${first.baseUrl}/completion`, { method: "POST", headers: childAuthHeaders(first.baseUrl!), body: "{}" })).text();
    await waitFor(() => h!.supervisor.runtimeOf("m1")?.statusDetail?.startsWith("gave up"), "giving up", 10_000);
    expect(h.supervisor.runtimeOf("m1")!.statusDetail).toBe("gave up after 3 restarts");
    expect(loadingAt.length).toBe(4); // the first start + 3 restarts
    const gaps = loadingAt.slice(1).map((t, i) => t - loadingAt[i]!);
    // 100 ms, 200 ms, then capped at 250 ms (plus crash detection for the first).
    expect(gaps[1]!).toBeGreaterThanOrEqual(195);
    expect(gaps[2]!).toBeGreaterThanOrEqual(245);
    expect(gaps[2]!).toBeLessThan(1000);
    expect(h.supervisor.runtimeOf("m1")!.state).toBe("error");
  });

  test("a model that stayed up long enough starts its restart count afresh", async () => {
    h = await makeHarness({ timings: { stableAfterMs: 200 }, config: { maxRestarts: 1 } });
    h.addModel("m1", { extraArgs: ["--fake-crash-after", "1"] });
    const crashOnce = async () => {
      const rt = await waitFor(() => {
        const r = h!.supervisor.runtimeOf("m1")!;
        return r.state === "running" ? r : undefined;
      }, "running");
      await Bun.sleep(250); // stay up longer than stableAfterMs
      await (await fetch(`${rt.baseUrl}/completion`, { method: "POST", headers: childAuthHeaders(rt.baseUrl!), body: "{}" })).text();
      await waitFor(() => h!.supervisor.runtimeOf("m1")!.pid !== rt.pid, "the crash");
    };
    await h.supervisor.start("m1");
    await crashOnce();
    await crashOnce();
    // With maxRestarts 1 and no reset, the second crash would have given up.
    const rt = await waitFor(() => {
      const r = h!.supervisor.runtimeOf("m1")!;
      return r.state === "running" ? r : undefined;
    }, "the second restart");
    expect(rt.restarts).toBe(1);
  });

  test("stop cancels a pending restart", async () => {
    h = await makeHarness({ config: { restartDelayMs: 300 } });
    h.addModel("m1", { extraArgs: ["--fake-crash-after", "1"] });
    const first = await h.supervisor.start("m1");
    await (await fetch(`${first.baseUrl}/completion`, { method: "POST", headers: childAuthHeaders(first.baseUrl!), body: "{}" })).text();
    await waitFor(() => h!.supervisor.runtimeOf("m1")!.statusDetail?.startsWith("restarting"), "the restart to be scheduled");
    await h.supervisor.stop("m1");
    // The restart timer itself is gone, so nothing can come back (no need to wait it out).
    expect(h.supervisor.runtimeOf("m1")!.restartPending).toBeUndefined();
    expect(h.supervisor.runtimeOf("m1")!.state).toBe("stopped");
    expect(processesMentioning(h.dir)).toEqual([]);
  });
});

describe("cycles", () => {
  test("repeated start/stop cycles leave no process behind (bench/supervisor-cycles.ts runs 50)", async () => {
    h = await makeHarness();
    h.addModel("m1");
    const pids = new Set<number>();
    for (let i = 0; i < 10; i++) {
      pids.add((await h.supervisor.start("m1")).pid!);
      await h.supervisor.stop("m1");
      expect(processesMentioning(h.dir)).toEqual([]);
    }
    expect(pids.size).toBe(10);
  });
});
