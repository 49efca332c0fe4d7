// Pure pieces of the console: form parsing with the API's schema, load stages, sparklines, rates.
import { describe, expect, test } from "bun:test";
import { fieldErrorsOfDetails } from "../../src/console/api-client";
import { queueByModel, stageFromLogs } from "../../src/console/data";
import { configFormSchema, fieldErrors, modelSettingsFormSchema, typedValues } from "../../src/console/forms";
import { formatDuration, formatGB, sparklinePoints } from "../../src/console/format";
import { RecentMetrics } from "../../src/console/recent";
import { EventBus } from "../../src/events";
import type { SystemMetrics } from "../../src/metrics/types";
import { RequestStats } from "../../src/proxy/stats";

const base = { host: "localhost", port: "8134", basePath: "/m", serverPath: "/bin/llama-server", ctx_size: "8192", batch_size: "512", threads: "-1", gpu_layers: "-1" };

/** What the settings route does: the schema, then per-field errors and the values as typed. */
function parseConfigForm(form: Record<string, unknown>) {
  const r = configFormSchema.safeParse(form);
  return r.success ? { ok: true as const, data: r.data } : { ok: false as const, errors: fieldErrors(r.error), values: typedValues(form) };
}

describe("the settings form (configFormSchema)", () => {
  test("numeric strings become numbers; the result is what POST /api/config accepts", () => {
    const r = parseConfigForm({ ...base, maxLoadedModels: "3" });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.data.port).toBe(8134);
      expect(r.data.threads).toBe(-1);
      expect(r.data.maxLoadedModels).toBe(3);
      expect(r.data.serverPath).toBe("/bin/llama-server");
    }
  });

  test("each problem is reported on its own field, with the schema's message", () => {
    const r = parseConfigForm({ ...base, port: "0", batch_size: "1.5", threads: "many", serverPath: "" });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors.port).toBe("Port must be between 1 and 65535");
      expect(r.errors.batch_size).toBe("batch_size must be a whole number");
      expect(r.errors.threads).toBe("threads must be a number");
      expect(r.errors.serverPath).toBe("serverPath is required");
      // What was typed is kept for the form.
      expect(r.values.threads).toBe("many");
    }
  });

  test("unknown fields are ignored rather than trusted", () => {
    const r = parseConfigForm({ ...base, evil: "1" });
    expect(r.ok).toBe(true);
    if (r.ok) expect("evil" in r.data).toBe(false);
  });
});

describe("the per-model settings editor (modelSettingsFormSchema)", () => {
  const parse = (form: Record<string, unknown>) => {
    const r = modelSettingsFormSchema.safeParse(form);
    return r.success ? { ok: true as const, data: r.data } : { ok: false as const, errors: fieldErrors(r.error) };
  };

  test("empty fields mean the global value (null); checkboxes: absent = off; kvCache checked stores no override", () => {
    const r = parse({ ctxSize: "", threads: " 4 ", aliases: "a1, a2", extraArgs: "--flash-attn\non", kvCache: "1" });
    expect(r).toEqual({
      ok: true,
      data: { ctxSize: null, batchSize: null, threads: 4, gpuLayers: null, idleTimeoutSeconds: null, aliases: ["a1", "a2"], extraArgs: ["--flash-attn", "on"], rpc: null, tensorSplit: null, autoStart: false, kvCache: null, rewrite: null },
    });
    const off = parse({ autoStart: "1" });
    expect(off.ok && [off.data.autoStart, off.data.kvCache]).toEqual([true, false]);
  });

  test("rewrite rules: JSON defaults/overrides and a comma separated strip become one rewrite setting", () => {
    const r = parse({ defaults: ' {"temperature": 0.2, "stop": ["\\n"]} ', overrides: '{"max_tokens": 3}', strip: "n_predict, logit_bias" });
    expect(r.ok && r.data.rewrite).toEqual({ defaults: { temperature: 0.2, stop: ["\n"] }, overrides: { max_tokens: 3 }, strip: ["n_predict", "logit_bias"] });
    // An empty object is no rule at all.
    const empty = parse({ defaults: "{}", overrides: "", strip: " , " });
    expect(empty.ok && empty.data.rewrite).toBeNull();
  });

  // Each refused field has its own message: the API schema's, or the form's for what is not JSON.
  test.each([
    [{ threads: "0" }, "threads", "threads must be -1 (auto) or between 1 and 1024"],
    [{ ctxSize: "lots" }, "ctxSize", "ctxSize must be a number"],
    [{ ctxSize: "1".repeat(41) }, "ctxSize", "Context size is too long (at most 40 characters)"],
    [{ aliases: ["a", "b"] }, "aliases", "Aliases must be a single text value"],
    [{ overrides: '{"temperature": ' }, "overrides", "Overrides: not valid JSON"],
    [{ defaults: "[1, 2]" }, "defaults", "rewrite.defaults must be an object of parameter: value"],
    [{ overrides: '{"model": "other"}' }, "overrides", "rewrite.overrides: the model parameter cannot be rewritten (the proxy routes by it)"],
    [{ strip: "temperature, model" }, "strip", "the model parameter cannot be rewritten (the proxy routes by it)"],
    [{ extraArgs: "--port\n9000" }, "extraArgs", "extraArgs may not set --port"],
  ] as [Record<string, unknown>, string, string][])("%j -> %s: %s", (form, field, message) => {
    const r = parse(form);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[field]).toStartWith(message);
  });

  test("several bad fields are all reported at once", () => {
    const r = parse({ threads: "0", overrides: "nope", strip: "model" });
    expect(r.ok === false && Object.keys(r.errors).sort()).toEqual(["overrides", "strip", "threads"]);
  });
});

describe("fieldErrorsOfDetails: an API refusal's details, back onto the form's fields", () => {
  const fields = ["serverPath", "port"];
  test.each([
    ["serverPath: /bin/sh does not answer --version", { serverPath: "/bin/sh does not answer --version" }],
    ["port: Port must be between 1 and 65535; serverPath: missing", { port: "Port must be between 1 and 65535", serverPath: "missing" }],
    ["serverPath: bad; something else broke", { serverPath: "bad", _form: "something else broke" }],
    ["evil: not a field of this form", null],
    ["no field at all", null],
    [undefined, null],
  ] as [string | undefined, Record<string, string> | null][])("%p", (details, expected) => {
    expect(fieldErrorsOfDetails(details, fields)).toEqual(expected);
  });
});

describe("stageFromLogs", () => {
  test("the newest recognised line names the stage", () => {
    expect(stageFromLogs(["build: 1 (abc)", "llama_model_loader: loaded meta data with 30 key-value pairs"])).toBe("reading model metadata");
    expect(stageFromLogs(["llama_model_loader: x", "load_tensors: CPU model buffer size = 17 MiB"])).toBe("loading tensors");
    expect(stageFromLogs(["load_tensors: x", "llama_context: n_ctx = 2048", "something unrelated"])).toBe("allocating context");
    expect(stageFromLogs(["main: model loaded", "main: server is listening on http://127.0.0.1:8134 - starting the main loop"])).toBe("ready, waiting for health check");
    expect(stageFromLogs(["nothing we know"])).toBeUndefined();
    // llama-server announces its HTTP socket before loading; that is not readiness.
    expect(stageFromLogs(["main: HTTP server is listening, hostname: 127.0.0.1, port: 8080, http threads: 3"])).not.toBe("ready, waiting for health check");
  });
});

describe("format", () => {
  test("sizes and durations", () => {
    expect(formatGB(4_920_000_000)).toBe("4.92 GB");
    expect(formatGB(17_000_000_000)).toBe("17.0 GB");
    expect(formatGB(0)).toBe("–");
    expect(formatDuration(3)).toBe("3s");
    expect(formatDuration(75)).toBe("1m 15s");
    expect(formatDuration(7322)).toBe("2h 2m");
  });

  test("sparkline points span the box, top value at the top", () => {
    const pts = sparklinePoints([0, 50, 100], 120, 32, 100).split(" ");
    expect(pts).toEqual(["0.0,31.0", "60.0,16.0", "120.0,1.0"]);
    expect(sparklinePoints([5], 120, 32)).toBe("");
  });
});

describe("RecentMetrics", () => {
  const sample = (t: number, requests: number): SystemMetrics => ({
    timestamp: new Date(t).toISOString(),
    cpu: { usage: 1, cores: 1, loadAverage: [0, 0, 0] },
    memory: { used: 1, total: 2, free: 1, usagePercent: 50 },
    disk: { used: 1, total: 2, free: 1, usagePercent: 50 },
    models: { active: 0, total: 0, memoryUsage: 0 },
    requests: { total: requests, active: 0, averageResponseTime: 0, errorRate: 0 },
    uptime: 0,
  });

  test("fills from the bus, keeps the newest N, and derives requests per minute", () => {
    const bus = new EventBus();
    const recent = new RecentMetrics(bus, new RequestStats(), 3);
    const t0 = Date.parse("2026-01-01T00:00:00Z");
    bus.emit("metrics.sample", sample(t0, 0));
    expect(recent.requestRate()).toBe(0);
    bus.emit("metrics.sample", sample(t0 + 30_000, 10));
    // Half a minute in: counted over a full minute, not extrapolated.
    expect(recent.requestRate()).toBe(10);
    bus.emit("metrics.sample", sample(t0 + 60_000, 30));
    expect(recent.requestRate()).toBe(30);
    bus.emit("metrics.sample", sample(t0 + 90_000, 60));
    expect(recent.list().length).toBe(3);
    expect(recent.requestRate()).toBe(50); // (60 - 10) over one minute
    recent.dispose();
    expect(bus.listenerCount("metrics.sample")).toBe(0);
  });
});

describe("queueByModel: each model's live requests by state", () => {
  test.each([
    [[], {}],
    [[{ model: "a", state: "running" }], { a: { running: 1, queued: 0 } }],
    // Waiting for a load is waiting, as waiting for a slot is.
    [[{ model: "a", state: "loading" }, { model: "a", state: "queued" }, { model: "b", state: "running" }, { model: "a", state: "running" }], { a: { running: 1, queued: 2 }, b: { running: 1, queued: 0 } }],
  ] as const)("%j", (requests, expected) => {
    expect(queueByModel(requests as unknown as Parameters<typeof queueByModel>[0])).toEqual(expected as Record<string, { running: number; queued: number }>);
  });
});
