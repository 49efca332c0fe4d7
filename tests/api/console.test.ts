// The web console through createApp().request(): pages, fragments, forms, static files, auth.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { FAKE_LLAMA_SERVER } from "../helpers/services";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeModel } from "../fixtures/gguf-writer";
import { makeTestServices, type TestContext } from "../helpers/services";
import { dashboardData } from "../../src/console/data";
import { formatNumber } from "../../src/console/format";
import { DashboardLive } from "../../src/console/partials/dashboard";
import type { SystemMetrics } from "../../src/metrics/types";

let t: TestContext;
beforeEach(() => {
  t = makeTestServices();
});
afterEach(async () => {
  await t.cleanup();
});

const ORIGIN = "http://localhost";
/** A form post as a browser sends it from our own page (same-origin). */
function form(fields: Record<string, string>, opts: { htmx?: boolean; origin?: string } = {}): RequestInit {
  return {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin: opts.origin ?? ORIGIN,
      ...(opts.htmx === false ? {} : { "hx-request": "true" }),
    },
    body: new URLSearchParams(fields).toString(),
  };
}

const VALID_CONFIG = {
  host: "127.0.0.1",
  port: "8200",
  basePath: "/srv/models",
  serverPath: FAKE_LLAMA_SERVER,
  ctx_size: "4096",
  batch_size: "256",
  threads: "4",
  gpu_layers: "-1",
  maxLoadedModels: "2",
  idleTimeoutSeconds: "600",
  loadTimeoutSeconds: "120",
  stopTimeoutSeconds: "10",
  maxRestarts: "5",
  restartDelayMs: "1000",
  restartMaxDelayMs: "60000",
  maxConcurrentRequests: "16",
  maxQueuedRequests: "64",
  metricsIntervalSeconds: "10",
  historyRetentionHours: "168",
};

function addModel(id: string, extra: Record<string, unknown> = {}) {
  t.services.registry.insert([{ id, name: id, path: `/models/${id}.gguf`, family: "llama", size: 2_500_000_000, quantization: "Q4_K_M", contextSize: 4096, ...extra }]);
}

describe("pages", () => {
  for (const [path, heading] of [
    ["/", "Dashboard"],
    ["/models", "Models"],
    ["/monitoring", "Monitoring"],
    ["/logs", "Logs"],
    ["/settings", "Settings"],
    ["/playground", "Playground"],
  ] as const) {
    test(`${path} renders a complete page with the navigation`, async () => {
      const res = await t.app.request(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/html");
      const html = await res.text();
      expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
      expect(html).toContain(`<h1>${heading}</h1>`);
      expect(html).toMatch(/<a href="\/models"[^>]*>Models<\/a>/);
      // The current page is marked for assistive technology.
      expect(html).toContain('aria-current="page"');
      expect(html).toMatch(/<script src="\/static\/htmx\.min\.js\?v=[a-z0-9]+" defer/);
    });
  }

  test("the dashboard shows server-side state without JavaScript", async () => {
    addModel("alpha");
    const html = await (await t.app.request("/")).text();
    expect(html).toContain('data-count="registered">1<');
    expect(html).toContain("llama-server");
    expect(html).toMatch(/data-metric="cpu">[\d.]+ %/);
    expect(html).toMatch(/data-metric="memory">[\d.]+ %/);
  });

  test("the dashboard draws sparklines from collector samples; its tiles show the collector's latest sample", async () => {
    const samples: SystemMetrics[] = [];
    for (let i = 0; i < 5; i++) {
      samples.push({
        timestamp: new Date(Date.now() + i * 10_000).toISOString(),
        cpu: { usage: 10 * i, cores: 2, loadAverage: [0, 0, 0] },
        memory: { used: 1000, total: 4000, free: 3000, usagePercent: 25 },
        disk: { used: 1, total: 2, free: 1, usagePercent: 50 },
        gpu: [{ id: 0, name: "NVIDIA H200", utilization: 80, temperature: 60.6666667, memory: { used: 21000, total: 143771, free: 122771, usagePercent: 14.6 } }],
        models: { active: 0, total: 0, memoryUsage: 0 },
        requests: { total: 0, active: 0, averageResponseTime: 0, errorRate: 0 },
        uptime: i,
      });
    }
    // The sparklines follow the samples on the bus; the tiles read the collector, the one holder
    // of the latest sample (here a real one: the collector loop is not running in app tests).
    for (const m of samples) t.services.bus.emit("metrics.sample", m);
    const latest = await t.services.collector.sampleNow();
    const html = await (await t.app.request("/ui/dashboard")).text();
    expect(html).toContain(`data-metric="cpu">${formatNumber(latest.cpu.usage)} %`);
    // The GPU tiles, rendered from a sample with a GPU (the temperature rounded to whole degrees).
    const withGpu = await DashboardLive({ d: { ...dashboardData(t.services), metrics: samples.at(-1)! } }).toString();
    expect(withGpu).toContain('data-metric="cpu">40 %');
    expect(withGpu).toContain("NVIDIA H200");
    expect(withGpu).toContain("61 °C");
    // One polyline per series that has points: cpu, memory, disk, gpu util, vram, temp, ...
    expect((html.match(/<polyline /g) ?? []).length).toBeGreaterThanOrEqual(6);
  });

  test("an unknown page is still the JSON 404 of the API", async () => {
    const res = await t.app.request("/no-such-page");
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe("NOT_FOUND");
  });
});

describe("fragments are the components the pages render", () => {
  test("the models table fragment is exactly the table inside /models", async () => {
    addModel("alpha");
    addModel("beta", { source: "discovered" });
    const fragment = await (await t.app.request("/ui/models/table", { headers: { "hx-request": "true" } })).text();
    const page = await (await t.app.request("/models")).text();
    expect(fragment.startsWith('<section id="models-table"')).toBe(true);
    expect(page).toContain(fragment);
    expect(fragment).toContain('data-model-id="alpha"');
    expect(fragment).toMatch(/data-status="discovered"[^>]*>discovered/);
    expect(fragment).toContain("2.50 GB");
  });

  test("the log view fragment is the one in /logs, filters included", async () => {
    t.services.log.warn("disk almost full");
    t.services.log.info("hello");
    const q = "?level=warn";
    const fragment = await (await t.app.request(`/ui/logs${q}`)).text();
    const page = await (await t.app.request(`/logs${q}`)).text();
    expect(page).toContain(fragment);
    expect(fragment).toContain("disk almost full");
    expect(fragment).not.toContain(">hello<");
  });
});

describe("settings form", () => {
  test("invalid values come back next to their fields, nothing is saved", async () => {
    const before = t.services.config.get();
    const res = await t.app.request("/ui/settings", form({ ...VALID_CONFIG, port: "99999", ctx_size: "lots", host: "" }));
    // htmx gets 200 (it swaps the form back in; a 4xx would be a browser console error).
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html.startsWith('<form id="config-form"')).toBe(true);
    expect(html).toContain('data-field-error="port">Port must be between 1 and 65535<');
    expect(html).toContain('data-field-error="ctx_size">ctx_size must be a number<');
    expect(html).toContain('data-field-error="host">Host is required<');
    // The bad input is shown back as typed, marked invalid and described by its error.
    expect(html).toMatch(/<input id="cfg-port" name="port" value="99999"[^>]*aria-invalid="true"[^>]*aria-describedby="[^"]*cfg-port-error/);
    expect(t.services.config.get()).toEqual(before);
  });

  test("valid values are saved through the config store and confirmed", async () => {
    const res = await t.app.request("/ui/settings", form(VALID_CONFIG));
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain("Configuration saved at");
    const cfg = t.services.config.get();
    expect(cfg.port).toBe(8200);
    expect(cfg.serverPath).toBe(FAKE_LLAMA_SERVER);
    expect(cfg.maxLoadedModels).toBe(2);
    const onDisk = JSON.parse(readFileSync(t.services.config.path, "utf8"));
    expect(onDisk.ctx_size).toBe(4096);
    // Same answer as the JSON API would give.
    const api = await (await t.app.request("/api/config")).json();
    expect(api.data.port).toBe(8200);
  });

  test("without htmx (no JavaScript) the answer is the whole settings page", async () => {
    const res = await t.app.request("/ui/settings", form({ ...VALID_CONFIG, threads: "0" }, { htmx: false }));
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).toContain("<h1>Settings</h1>");
    expect(html).toContain('data-field-error="threads">threads must be -1 (auto) or between 1 and 1024<');
  });

  test("a plain post that worked redirects (Post/Redirect/Get) to the page saying so", async () => {
    const res = await t.app.request("/ui/settings", form(VALID_CONFIG, { htmx: false }));
    expect(res.status).toBe(303);
    const where = res.headers.get("location")!;
    expect(where).toMatch(/^\/settings\?saved=/);
    expect(await (await t.app.request(where)).text()).toContain("Configuration saved at");
  });

  test("a post from another origin is refused (it could choose the binary we run)", async () => {
    const res = await t.app.request("/ui/settings", form({ ...VALID_CONFIG, serverPath: "/tmp/evil" }, { origin: "http://evil.example" }));
    expect(res.status).toBe(403);
    expect(t.services.config.get().serverPath).not.toBe("/tmp/evil");
  });
});

describe("models", () => {
  test("a failed start is shown inline with its reason", async () => {
    addModel("alpha");
    // This build's supervisor may refuse (no supervisor) or fail on the missing binary/file;
    // either way the table comes back with the reason instead of hanging or crashing.
    t.services.config.update({ ...t.services.config.get(), serverPath: "/nonexistent/llama-server" });
    const res = await t.app.request("/ui/models/alpha/start", form({}));
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html.startsWith('<section id="models-table"')).toBe(true);
    const shown = /Could not start alpha|Start failed/.test(html);
    expect(shown).toBe(true);
  });

  test("start answers at once with the row loading; the loading row polls itself with elapsed time and stage", async () => {
    const FAKE = join(import.meta.dir, "../fixtures/fake-llama-server.ts");
    t.services.config.update({ ...t.services.config.get(), serverPath: FAKE, host: "127.0.0.1", port: 21000 + Math.floor(Math.random() * 20000) });
    const file = join(t.dir, "slow.gguf");
    writeModel(file, { arch: "llama" });
    t.services.registry.insert([{ id: "slow", name: "slow", path: file, family: "llama", size: 1000, settings: { extraArgs: ["--fake-load-ms", "8000"] } }]);
    const t0 = performance.now();
    const res = await t.app.request("/ui/models/slow/start", form({}));
    // Not held for the whole load (8 s).
    expect(performance.now() - t0).toBeLessThan(4000);
    const table = await res.text();
    expect(table).toMatch(/<tr id="model-slow"[^>]*data-status="loading"[^>]*hx-trigger="every 1s"/);
    // The table itself does not poll; only the loading row does.
    expect(table).toMatch(/<section id="models-table"[^>]*hx-trigger="lap-models from:body"/);
    const row = await (await t.app.request("/ui/models/slow/row")).text();
    expect(row.startsWith('<tr id="model-slow"')).toBe(true);
    expect(row).toContain('class="progress"');
    expect(row).toMatch(/data-elapsed-since="\d{4}-/);
    await t.services.supervisor.stop("slow");
    const after = await (await t.app.request("/ui/models/slow/row")).text();
    expect(after).toMatch(/data-status="stopped"/);
    expect(after).not.toContain("every 1s"); // no longer polls itself (the fit hints have triggers of their own)
  });

  test("starting an unknown model says so", async () => {
    const res = await t.app.request("/ui/models/nope/start", form({}, { htmx: false }));
    expect(res.status).toBe(404);
    expect(await res.text()).toContain("No model &quot;nope&quot;");
  });

  test("remove without JavaScript asks for confirmation first", async () => {
    addModel("alpha");
    const res = await t.app.request("/ui/models/alpha/delete", form({}, { htmx: false }));
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain("Remove alpha?");
    expect(html).toContain('name="confirmed" value="1"');
    expect(t.services.registry.get("alpha")).toBeDefined();
  });

  test("discover scans through POST /api/models/discover and lists what it found", async () => {
    const folder = join(t.dir, "models");
    mkdirSync(join(folder, "sub"), { recursive: true });
    writeModel(join(folder, "llama-3-8b-instruct.Q4_K_M.gguf"), { arch: "llama", name: "Llama 3 8B Instruct", fileType: 15, contextLength: 8192 });
    writeModel(join(folder, "sub", "qwen2-0.5b.gguf"), { arch: "qwen2", contextLength: 32768 });
    writeModel(join(folder, "skip.tmp.gguf"), { arch: "llama" });
    const res = await t.app.request("/ui/models/discover", form({ paths: folder, recursive: "1", includePatterns: "*.gguf", excludePatterns: "*.tmp.gguf" }));
    expect(res.status).toBe(200);
    // The table is told to refresh (the socket would tell it too).
    expect(res.headers.get("hx-trigger")).toBe("lap-models");
    const html = await res.text();
    expect(html.startsWith('<section id="discover-form"')).toBe(true);
    expect(html).toMatch(/Found <strong>2<\/strong> models/);
    expect(html).toContain("llama-3-8b-instruct.Q4_K_M");
    expect(html).toContain("llama · Q4_K_M");
    expect(html).not.toContain("skip.tmp");
    const table = await (await t.app.request("/ui/models/table")).text();
    expect((table.match(/<tr [^>]*data-status="discovered"/g) ?? []).length).toBe(2);
  });

  test("discover of a folder that does not exist shows the API's error in the form", async () => {
    const res = await t.app.request("/ui/models/discover", form({ paths: join(t.dir, "nope"), recursive: "1" }));
    const html = await res.text();
    expect(html).toContain('class="field-error"');
    expect(t.services.registry.list().length).toBe(0);
  });

  test("register by path goes through POST /api/models; a duplicate is refused with its reason", async () => {
    const file = join(t.dir, "mistral-7b.Q5_K_M.gguf");
    writeModel(file, { arch: "llama", name: "Mistral 7B", fileType: 17 });
    const ok = await t.app.request("/ui/models/register", form({ path: file }));
    expect(await ok.text()).toContain("Registered");
    const row = t.services.registry.findByPath(file);
    expect(row).toBeDefined();
    const again = await t.app.request("/ui/models/register", form({ path: file }));
    const html = await again.text();
    expect(html).toContain('id="reg-error"');
    // The typed client's ApiClientError, shown as "message: details" like the envelope says it.
    expect(html).toContain(`Model already exists: models[0]: ${file} is already registered as &quot;${row!.id}&quot;`);
    expect(again.status).toBe(200); // htmx swaps the form back in (a 409 would only log a console error)
    expect(html).toContain(`value="${file}"`);
    expect(t.services.registry.list().length).toBe(1);
  });

  test("the settings editor saves per-model overrides through PATCH; an empty field clears one", async () => {
    addModel("alpha", { settings: { ctxSize: 1024, aliases: ["old"] } });
    const res = await t.app.request("/ui/models/alpha/settings", form({ ctxSize: "", batchSize: "256", threads: "4", gpuLayers: "", idleTimeoutSeconds: "300", aliases: "a1, a2", extraArgs: "--flash-attn\non", autoStart: "1" }));
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("Saved.");
    const st = t.services.registry.get("alpha")!.settings;
    expect(st.ctxSize).toBeUndefined();
    expect(st.batchSize).toBe(256);
    expect(st.aliases).toEqual(["a1", "a2"]);
    expect(st.extraArgs).toEqual(["--flash-attn", "on"]);
    expect(st.autoStart).toBe(true);
  });

  test("RPC workers and tensor split are set from the editor: names, \"all\", cleared; bad values are field errors", async () => {
    addModel("big");
    const save = (fields: Record<string, string>) => t.app.request("/ui/models/big/settings", form({ kvCache: "1", ...fields }));
    let res = await save({ rpc: "gpu-box-1, gpu-box-2", tensorSplit: "3, 1" });
    expect(await res.text()).toContain("Saved.");
    expect(t.services.registry.get("big")!.settings).toMatchObject({ rpc: ["gpu-box-1", "gpu-box-2"], tensorSplit: [3, 1] });
    // The editor shows them as saved.
    const page = await (await t.app.request("/models")).text();
    expect(page).toContain('name="rpc" value="gpu-box-1, gpu-box-2"');
    expect(page).toContain('name="tensorSplit" value="3, 1"');

    await save({ rpc: "ALL", tensorSplit: "" });
    expect(t.services.registry.get("big")!.settings.rpc).toBe("all");
    expect(t.services.registry.get("big")!.settings.tensorSplit).toBeUndefined();

    for (const [fields, field, message] of [
      [{ rpc: "gpu box" }, "rpc", "rpc entries must be rpcWorkers names"],
      [{ rpc: "w1, w1" }, "rpc", "rpc must not name a worker twice"],
      [{ tensorSplit: "3, lots" }, "tensorSplit", "tensorSplit entries must be numbers"],
      [{ tensorSplit: "-1" }, "tensorSplit", "tensorSplit entries must be 0 or more"],
    ] as const) {
      res = await save(fields);
      const html = await res.text();
      expect(html).toContain(`data-field-error="${field}">`);
      expect(html).toContain(message);
      // Nothing changed.
      expect(t.services.registry.get("big")!.settings.rpc).toBe("all");
    }
    await save({ rpc: "" });
    expect(t.services.registry.get("big")!.settings.rpc).toBeUndefined();
  });

  test("the fit hint of a model removed meanwhile is a hint (200), not an HTTP error", async () => {
    const res = await t.app.request("/ui/models/gone/fit");
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('No model &quot;gone&quot;');
  });

  test("an invalid per-model setting shows the API's message and changes nothing", async () => {
    addModel("alpha", { settings: { threads: 2 } });
    const res = await t.app.request("/ui/models/alpha/settings", form({ threads: "0" }));
    const html = await res.text();
    expect(html).toContain("threads must be -1 (auto) or between 1 and 1024");
    // The editor stays open so the message is seen.
    expect(html).toMatch(/<details class="settings-editor" open/);
    expect(t.services.registry.get("alpha")!.settings.threads).toBe(2);
  });

  test("a refused field is shown next to itself (aria-invalid), with what was typed; nothing is saved", async () => {
    addModel("alpha", { settings: { threads: 2, aliases: ["kept"] } });
    const res = await t.app.request("/ui/models/alpha/settings", form({ threads: "0", aliases: "typed-alias", ctxSize: "lots", kvCache: "1" }));
    // htmx swaps the table back in: 200, HTML (not the JSON envelope).
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const html = await res.text();
    expect(html.startsWith('<section id="models-table"')).toBe(true);
    expect(html).toMatch(/<input id="ms-alpha-threads" name="threads" inputmode="numeric" value="0" aria-invalid="true" aria-describedby="ms-alpha-threads-error"/);
    expect(html).toContain('<small id="ms-alpha-threads-error" class="field-error" data-field-error="threads">threads must be -1 (auto) or between 1 and 1024</small>');
    expect(html).toContain('data-field-error="ctxSize">ctxSize must be a number<');
    expect(html).toContain('value="typed-alias"');
    expect(html).toContain("Not saved: 2 fields need fixing.");
    expect(t.services.registry.get("alpha")!.settings).toMatchObject({ threads: 2, aliases: ["kept"] });
    // Without JavaScript: the whole page, with the honest 400.
    const plain = await t.app.request("/ui/models/alpha/settings", form({ threads: "0" }, { htmx: false }));
    expect(plain.status).toBe(400);
    expect(await plain.text()).toContain('data-field-error="threads"');
  });

  test("rewrite rules are edited in the settings editor and saved through PATCH; empty fields remove them", async () => {
    addModel("alpha");
    const res = await t.app.request("/ui/models/alpha/settings", form({ kvCache: "1", defaults: '{"temperature": 0.25}', overrides: '{"max_tokens": 3}', strip: "n_predict, logit_bias" }));
    const html = await res.text();
    expect(html).toContain("Saved.");
    expect(t.services.registry.get("alpha")!.settings.rewrite).toEqual({ defaults: { temperature: 0.25 }, overrides: { max_tokens: 3 }, strip: ["n_predict", "logit_bias"] });
    // The editor shows the saved rules.
    expect(html).toContain('name="defaults" rows="2" spellcheck="false" placeholder="JSON, e.g. {&quot;temperature&quot;: 0.7}" aria-describedby="ms-alpha-rewrite-hint">{&quot;temperature&quot;:0.25}</textarea>');
    expect(html).toContain('name="strip" value="n_predict, logit_bias"');
    const cleared = await t.app.request("/ui/models/alpha/settings", form({ kvCache: "1", defaults: "", overrides: "", strip: "" }));
    expect(await cleared.text()).toContain("Saved.");
    expect(t.services.registry.get("alpha")!.settings.rewrite).toBeUndefined();
  });

  test("a rewrite rule that is not JSON, or one the API refuses, is a field error; the rules stay", async () => {
    addModel("alpha", { settings: { rewrite: { overrides: { max_tokens: 3 } } } });
    const bad = await (await t.app.request("/ui/models/alpha/settings", form({ overrides: '{"max_tokens": ' }))).text();
    expect(bad).toMatch(/data-field-error="overrides">Overrides: not valid JSON \(/);
    expect(bad).toContain("{&quot;max_tokens&quot;: </textarea>"); // shown back as typed
    const refused = await (await t.app.request("/ui/models/alpha/settings", form({ defaults: '{"model": "other"}', strip: "model" }))).text();
    expect(refused).toContain('data-field-error="defaults">rewrite.defaults: the model parameter cannot be rewritten (the proxy routes by it)<');
    expect(refused).toContain('data-field-error="strip">the model parameter cannot be rewritten (the proxy routes by it)<');
    expect(t.services.registry.get("alpha")!.settings.rewrite).toEqual({ overrides: { max_tokens: 3 } });
  });

  test("a save the API refuses (an alias another model has) shows its message with the typed values", async () => {
    addModel("alpha");
    addModel("beta", { settings: { aliases: ["taken"] } });
    const html = await (await t.app.request("/ui/models/alpha/settings", form({ aliases: "taken", ctxSize: "2048" }))).text();
    expect(html).toContain('Alias already in use: &quot;taken&quot; already names model &quot;beta&quot;');
    expect(html).toMatch(/<details class="settings-editor" open=""><summary>Settings<\/summary><form method="post" action="\/ui\/models\/alpha\/settings"/);
    expect(html).toContain('name="ctxSize" inputmode="numeric" value="2048"');
    expect(t.services.registry.get("alpha")!.settings.ctxSize).toBeUndefined();
  });

  test("discover without a folder is refused by the form next to the field", async () => {
    const res = await t.app.request("/ui/models/discover", form({ paths: " \n ", recursive: "1" }));
    const html = await res.text();
    expect(html.startsWith('<section id="discover-form"')).toBe(true);
    expect(html).toContain('data-field-error="paths">Give at least one folder.<');
    expect(html).toMatch(/<textarea id="disc-paths" name="paths" rows="2" placeholder="[^"]*" aria-invalid="true"/);
  });

  test("register with an empty path is refused by the form", async () => {
    const res = await t.app.request("/ui/models/register", form({ path: " " }, { htmx: false }));
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).toContain('<small id="reg-path-error" class="field-error" data-field-error="path">The file path is required.</small>');
    expect(html).toContain("<h1>Models</h1>"); // the whole page (no JavaScript), not the JSON envelope
  });
});

describe("playground", () => {
  test("the model picker re-renders with fresh statuses and keeps the choice", async () => {
    addModel("alpha");
    addModel("beta");
    const page = await (await t.app.request("/playground")).text();
    const fragment = await (await t.app.request("/ui/playground/models")).text();
    expect(page).toContain(fragment);
    const kept = await (await t.app.request("/ui/playground/models?model=beta")).text();
    expect(kept).toMatch(/<option value="beta" selected="">beta \(stopped\)<\/option>/);
    expect(kept).toMatch(/<option value="alpha">/);
  });
});

describe("logs", () => {
  test("/ui/logs/lines returns only lines after the given id, and the newest id", async () => {
    t.services.log.info("first");
    const after = t.services.logs.lastId;
    t.services.log.info("second");
    t.services.log.error("third");
    const res = await t.app.request(`/ui/logs/lines?afterId=${after}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-last-id")).toBe(String(t.services.logs.lastId));
    const html = await res.text();
    expect(html).not.toContain(">first<");
    expect(html).toContain(">second<");
    expect(html).toMatch(/data-level="error"[^]*third/);
  });

  test("a bad level is a clear 400, not a crash", async () => {
    const res = await t.app.request("/ui/logs/lines?level=loud");
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("Invalid query parameters");
  });

  test("download gives the filtered lines as a text file", async () => {
    t.services.log.warn("keep me");
    t.services.log.info("drop me");
    const res = await t.app.request("/ui/logs/download?q=keep");
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(res.headers.get("content-disposition")).toMatch(/attachment; filename="llama-async-proxy-.*\.log"/);
    const text = await res.text();
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT.*WARN  \[proxy\] keep me\n$/);
  });
});

describe("static files", () => {
  test("htmx, uPlot and our files are served with a content hash", async () => {
    const page = await (await t.app.request("/monitoring")).text();
    for (const name of ["htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css", "app.css", "console.js"]) {
      const url = page.match(new RegExp(`/static/${name.replace(/\./g, "\\.")}\\?v=[a-z0-9]+`))?.[0];
      expect(url).toBeDefined();
      const res = await t.app.request(url!);
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      const etag = res.headers.get("etag")!;
      expect(etag).toMatch(/^"[a-z0-9]+"$/);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(100);
      // Revalidation is a bodyless 304.
      const again = await t.app.request(url!, { headers: { "if-none-match": etag } });
      expect(again.status).toBe(304);
    }
    const htmx = await (await t.app.request("/static/htmx.min.js")).text();
    expect(htmx).toContain("htmx");
  });

  test("an unversioned URL must revalidate; an unknown file is 404", async () => {
    const res = await t.app.request("/static/app.css");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect((await t.app.request("/static/secret.txt")).status).toBe(404);
  });
});

describe("with an API key", () => {
  test("pages ask for the key once and then work from the cookie", async () => {
    const k = makeTestServices({ apiKey: "s3cret" });
    try {
      const first = await k.app.request("/models");
      expect(first.status).toBe(401);
      expect(await first.text()).toContain('name="key"');
      expect((await k.app.request("/ui/models/table")).status).toBe(401);

      const wrong = await k.app.request("/login", form({ key: "nope", next: "/models" }, { htmx: false }));
      expect(wrong.status).toBe(401);
      // A form that is not the login form (the key sent twice) is refused on the login page, not as JSON.
      const twice = await k.app.request("/login", { ...form({}, { htmx: false }), body: "key=s3cret&key=s3cret&next=%2Fmodels" });
      expect(twice.status).toBe(400);
      expect(twice.headers.get("content-type")).toContain("text/html");
      expect(twice.headers.get("set-cookie")).toBeNull();
      expect(await twice.text()).toContain('<input type="hidden" name="next" value="/models"/>');

      const login = await k.app.request("/login", form({ key: "s3cret", next: "/models" }, { htmx: false }));
      expect(login.status).toBe(303);
      expect(login.headers.get("location")).toBe("/models");
      const cookie = login.headers.get("set-cookie")!;
      expect(cookie).toContain("HttpOnly");
      const page = await k.app.request("/models", { headers: { cookie: cookie.split(";")[0]! } });
      expect(page.status).toBe(200);
      // A form reaches /api in process with the caller's cookie: the API's own auth applies.
      const file = join(k.dir, "keyed.gguf");
      writeModel(file, { arch: "llama", name: "Keyed" });
      const registered = await k.app.request("/ui/models/register", { ...form({ path: file }), headers: { ...(form({}).headers as Record<string, string>), cookie: cookie.split(";")[0]! } });
      expect(await registered.text()).toContain("Registered keyed.");
      expect(k.services.registry.findByPath(file)).toBeDefined();
      // The API itself still answers its own 401 shape.
      const api = await k.app.request("/api/config");
      expect(api.status).toBe(401);
      expect((await api.json()).error.code).toBe("UNAUTHORIZED");
    } finally {
      await k.cleanup();
    }
  });
});
