import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Ollama } from "ollama";
import type { ModelSettings } from "../../src/db/schema";
import { GgufType } from "../../src/models/gguf";
import { startServer, type RunningServer } from "../../src/server";
import { modelMetadata, writeGguf } from "../fixtures/gguf-writer";
import { waitFor } from "../helpers/services";

// Ollama's API end to end: a real server on port 0, the real supervisor spawning the fake
// llama-server (a real process on a real port), and the real `ollama` npm client (ollama-js).
const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");
const TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if tools %}tools{% endif %}";

let dir: string;
let srv: RunningServer;
let ollama: Ollama;

/** A model file with a real GGUF header (the fake server only needs it to exist). */
function register(id: string, settings: ModelSettings = {}, extra: Record<string, unknown> = {}) {
  const path = join(dir, `${id}.gguf`);
  writeGguf(path, {
    metadata: {
      ...modelMetadata({ arch: "llama", name: id, fileType: 15, contextLength: 4096 }),
      "general.parameter_count": { type: GgufType.UINT64, value: 8_030_261_248n },
      "tokenizer.chat_template": TEMPLATE,
      ...(extra as Record<string, never>),
    },
    size: 4096,
  });
  return srv.services.registry.insert([{ id, name: id, path, size: 4096, family: "llama", format: "gguf", quantization: "Q4_K_M", settings }])[0]!;
}

const status = (id: string) => srv.services.supervisor.runtimeOf(id)?.state ?? "stopped";

async function boot(options: { apiKey?: string; config?: Record<string, unknown> } = {}) {
  const sub = join(dir, `run${Math.random().toString(36).slice(2)}`);
  srv = await startServer({
    port: 0,
    host: "127.0.0.1",
    dataDir: sub,
    configPath: join(sub, "config.json"),
    logLevel: "error",
    environment: "test",
    quiet: true,
    databasePath: ":memory:",
    apiKey: options.apiKey,
    proxy: { loadingCommentAfterMs: 150, loadingCommentEveryMs: 100, maxBodyBytes: 256 * 1024 },
  });
  srv.services.config.update({
    ...srv.services.config.get(),
    serverPath: FAKE,
    host: "127.0.0.1",
    port: 20000 + Math.floor(Math.random() * 20000),
    stopTimeoutSeconds: 2,
    maxRestarts: 0,
    maxLoadedModels: 4,
    ...options.config,
  });
  ollama = new Ollama({ host: srv.url, headers: options.apiKey ? { Authorization: `Bearer ${options.apiKey}` } : undefined });
}

/** What ollama-js throws for an HTTP error (its ResponseError). */
interface ResponseError extends Error {
  error: string;
  status_code: number;
}

async function expectOllamaError(p: Promise<unknown>, status: number, message: RegExp) {
  const err = (await p.then(() => null, (e) => e)) as ResponseError | null;
  expect(err).not.toBeNull();
  expect(err!.status_code).toBe(status);
  expect(err!.error).toMatch(message);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lap-ollama-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("ollama-js against the proxy", () => {
  beforeAll(async () => {
    await boot();
    register("tiny", { aliases: ["llama3.2:latest"], extraArgs: ["--fake-load-ms", "200"] });
    register("slow", { extraArgs: ["--fake-token-delay-ms", "150"] });
    register("embedder", { extraArgs: ["--embeddings"] }, { "llama.pooling_type": 1 });
    register("tooly", { extraArgs: ["--fake-tool-calls"] });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  test("version and list: every model with Ollama's fields, details from the GGUF header", async () => {
    expect((await ollama.version()).version).toMatch(/^\d+\.\d+\.\d+$/);
    const { models } = await ollama.list();
    const tiny = models.find((m) => m.name === "tiny:latest")!;
    expect(tiny).toBeDefined();
    expect(tiny.model).toBe("tiny:latest");
    expect(tiny.size).toBe(4096);
    expect(tiny.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(tiny.modified_at as unknown as string)).toBeGreaterThan(0);
    expect(tiny.details).toEqual({
      parent_model: "",
      format: "gguf",
      family: "llama",
      families: ["llama"],
      parameter_size: "8.0B",
      quantization_level: "Q4_K_M",
    });
    expect(models.map((m) => m.name).sort()).toEqual(["embedder:latest", "slow:latest", "tiny:latest", "tooly:latest"]);
  });

  test("show: details, model_info from the header, the chat template, capabilities", async () => {
    const info = await ollama.show({ model: "tiny" });
    expect(info.details.family).toBe("llama");
    expect(info.template).toBe(TEMPLATE);
    // ollama-js types model_info as a Map; on the wire it is a JSON object.
    const modelInfo = info.model_info as unknown as Record<string, unknown>;
    expect(modelInfo["general.architecture"]).toBe("llama");
    expect(modelInfo["llama.context_length"]).toBe(4096);
    expect(modelInfo["general.parameter_count"]).toBe(8_030_261_248);
    expect(info.capabilities).toEqual(["completion", "tools"]);
    expect((await ollama.show({ model: "embedder:latest" })).capabilities).toEqual(["embedding", "tools"]);
  });

  test("chat, not streamed, loads the model on demand and answers one object with timings", async () => {
    expect(status("tiny")).toBe("stopped");
    const res = await ollama.chat({ model: "tiny:latest", messages: [{ role: "user", content: "hi" }], options: { num_predict: 5, temperature: 0 } });
    expect(res.model).toBe("tiny:latest");
    expect(res.message.role).toBe("assistant");
    expect(res.message.content.length).toBeGreaterThan(0);
    expect(res.done).toBe(true);
    expect(res.done_reason).toBe("length");
    expect(res.eval_count).toBe(5);
    expect(res.prompt_eval_count).toBeGreaterThan(0);
    // It waited for a 200 ms load: that is load_duration, in nanoseconds.
    expect(res.load_duration).toBeGreaterThan(150e6);
    expect(res.total_duration).toBeGreaterThan(res.load_duration);
    expect(res.eval_duration).toBeGreaterThan(0);
    expect(status("tiny")).toBe("running");
  });

  test("chat, streamed: one part per token, the last one done with statistics", async () => {
    const parts = [];
    for await (const part of await ollama.chat({ model: "llama3.2", messages: [{ role: "user", content: "hi" }], stream: true, options: { num_predict: 4 } })) {
      parts.push(part);
    }
    expect(parts).toHaveLength(5);
    expect(parts.slice(0, 4).every((p) => !p.done && p.message.content.length > 0)).toBe(true);
    const last = parts.at(-1)!;
    expect(last.done).toBe(true);
    expect(last.message.content).toBe("");
    expect(last.eval_count).toBe(4);
    expect(typeof last.total_duration).toBe("number");
  });

  test("generate: templated, raw (native /completion) and with suffix (/infill), streamed and not", async () => {
    const plain = await ollama.generate({ model: "tiny", prompt: "Why is the sky blue?", system: "Be brief.", options: { num_predict: 3 } });
    expect(plain.response!.length).toBeGreaterThan(0);
    expect(plain.done).toBe(true);
    expect(plain.eval_count).toBe(3);

    const raw = await ollama.generate({ model: "tiny", prompt: "[INST] why? [/INST]", raw: true, options: { num_predict: 2 } });
    expect(raw.response).toBe(" Thomas pelos");
    expect(raw.done_reason).toBe("length");

    const parts = [];
    for await (const p of await ollama.generate({ model: "tiny", prompt: "def gcd(a, b):", suffix: "    return result", stream: true, options: { num_predict: 3 } })) parts.push(p);
    expect(parts.map((p) => p.response).join("")).toBe(" Thomas pelos resolve");
    expect(parts.at(-1)!.done).toBe(true);
  });

  test("tools: the model's tool call comes back whole, arguments as an object, streamed and not", async () => {
    const tools = [{ type: "function", function: { name: "get_current_weather", description: "weather", parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] } } }];
    const res = await ollama.chat({ model: "tooly", messages: [{ role: "user", content: "weather in Paris?" }], tools });
    expect(res.message.tool_calls).toEqual([{ id: expect.any(String), function: { index: 0, name: "get_current_weather", arguments: { location: "Paris" } } } as never]);
    expect(res.done_reason).toBe("stop");
    const parts = [];
    for await (const p of await ollama.chat({ model: "tooly", messages: [{ role: "user", content: "weather in Paris?" }], tools, stream: true })) parts.push(p);
    const withCalls = parts.filter((p) => p.message.tool_calls?.length);
    expect(withCalls).toHaveLength(1);
    expect(withCalls[0]!.message.tool_calls![0]!.function.arguments).toEqual({ location: "Paris" });
    expect(parts.at(-1)!.done).toBe(true);
  });

  test("embed (batch) and embeddings (old) on a model started with --embeddings", async () => {
    const res = await ollama.embed({ model: "embedder", input: ["Why is the sky blue?", "Why is the grass green?"] });
    expect(res.model).toBe("embedder");
    expect(res.embeddings).toHaveLength(2);
    expect(res.embeddings[0]).toHaveLength(64);
    expect(res.embeddings[0]).not.toEqual(res.embeddings[1]);
    const cut = await ollama.embed({ model: "embedder", input: "x", dimensions: 8 });
    expect(cut.embeddings[0]).toHaveLength(8);
    expect(Math.hypot(...cut.embeddings[0]!)).toBeCloseTo(1, 5);
    const old = await ollama.embeddings({ model: "embedder", prompt: "Here is an article about llamas..." });
    expect(old.embedding).toHaveLength(64);
    // A model started without --embeddings: Ollama's 400 with llama-server's reason and the fix.
    await expectOllamaError(ollama.embed({ model: "tiny", input: "x" }), 400, /does not support embeddings.*extraArgs/);
  });

  test("ps: running models with size, expires_at from keep_alive (-1 = never), context length", async () => {
    await ollama.generate({ model: "tiny", prompt: "x", options: { num_predict: 1 }, keep_alive: "10m" });
    let { models } = await ollama.ps();
    const tiny = models.find((m) => m.name === "tiny:latest")!;
    expect(tiny).toBeDefined();
    expect(tiny.size).toBeGreaterThan(0);
    expect(tiny.digest).toMatch(/^[0-9a-f]{64}$/);
    const left = Date.parse(tiny.expires_at as unknown as string) - Date.now();
    expect(left).toBeGreaterThan(9 * 60_000);
    expect(left).toBeLessThanOrEqual(10 * 60_000);
    expect((tiny as unknown as { context_length: number }).context_length).toBeGreaterThan(0);
    await ollama.generate({ model: "tiny", prompt: "x", options: { num_predict: 1 }, keep_alive: -1 });
    ({ models } = await ollama.ps());
    expect(new Date(models.find((m) => m.name === "tiny:latest")!.expires_at).getUTCFullYear()).toBeGreaterThan(2300);
    expect(models.some((m) => m.name === "slow:latest")).toBe(false);
    // Longer than setTimeout can wait (2^31-1 ms): the model must stay, not stop at once.
    const pid = srv.services.supervisor.runtimeOf("tiny")!.pid;
    await ollama.generate({ model: "tiny", prompt: "x", options: { num_predict: 1 }, keep_alive: "1000h" });
    ({ models } = await ollama.ps());
    expect(Date.parse(models.find((m) => m.name === "tiny:latest")!.expires_at as unknown as string) - Date.now()).toBeGreaterThan(999 * 3600_000);
    await ollama.generate({ model: "tiny", prompt: "x", options: { num_predict: 1 } });
    expect(srv.services.supervisor.runtimeOf("tiny")!.pid).toBe(pid!);
  });

  test("the model's rewrite rules apply to Ollama requests too", async () => {
    register("ruled", { rewrite: { overrides: { n_predict: 2 } } });
    const res = await ollama.generate({ model: "ruled", prompt: "x", options: { num_predict: 6 } });
    expect(res.eval_count).toBe(2);
    const { data } = await (await fetch(`${srv.url}/api/activity?model=ruled`)).json();
    expect(data.entries[0]).toMatchObject({ route: "/api/generate", rewritten: ["n_predict"] });
  });

  test("an empty request loads (done_reason load); keep_alive 0 unloads, as Ollama does", async () => {
    const loaded = await ollama.chat({ model: "slow", messages: [] });
    expect(loaded.done_reason).toBe("load");
    expect(status("slow")).toBe("running");
    const unloaded = await ollama.generate({ model: "slow", prompt: "", keep_alive: 0 });
    expect(unloaded.done_reason).toBe("unload");
    await waitFor(() => status("slow") === "stopped", "slow to unload");
    // A request with keep_alive 0 answers, then the model goes.
    const once = await ollama.generate({ model: "slow", prompt: "x", options: { num_predict: 1 }, keep_alive: 0 });
    expect(once.done).toBe(true);
    await waitFor(() => status("slow") === "stopped", "slow to unload after its request");
  });

  test("the first NDJSON line leaves with the first token, not with the whole answer", async () => {
    // slow: 150 ms between tokens, 4 tokens. A buffered stream would hand over every line at once.
    const res = await fetch(`${srv.url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "slow", prompt: "x", options: { num_predict: 4 } }) });
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const lines = first.trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ model: "slow", response: " Thomas", done: false });
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest.trimEnd().split("\n").map((l) => JSON.parse(l).done)).toEqual([false, false, false, true]);
  });

  test("unknown models: Ollama's 404 on every route", async () => {
    await expectOllamaError(ollama.chat({ model: "nope", messages: [{ role: "user", content: "x" }] }), 404, /^model 'nope' not found$/);
    await expectOllamaError(ollama.generate({ model: "nope:latest", prompt: "x" }), 404, /model 'nope:latest' not found/);
    await expectOllamaError(ollama.show({ model: "nope" }), 404, /not found/);
    await expectOllamaError(ollama.embed({ model: "nope", input: "x" }), 404, /not found/);
    // A real tag is not dropped: tiny:7b is not tiny.
    await expectOllamaError(ollama.chat({ model: "tiny:7b", messages: [{ role: "user", content: "x" }] }), 404, /not found/);
  });

  test("pull of a served model succeeds; pull/push/create/copy of others say where models come from", async () => {
    expect((await ollama.pull({ model: "tiny" })).status).toBe("success");
    await expectOllamaError(ollama.pull({ model: "llama3.3:70b" }), 501, /models folder/);
    await expectOllamaError(ollama.push({ model: "tiny" }), 501, /models folder/);
    await expectOllamaError(ollama.create({ model: "mario", from: "tiny" }), 501, /models folder/);
    await expectOllamaError(ollama.copy({ source: "tiny", destination: "tiny-backup" }), 501, /models folder/);
    expect((await fetch(`${srv.url}/api/blobs/sha256:29fdb92e`, { method: "HEAD" })).status).toBe(501);
  });

  test("delete forgets a stopped model and keeps its file; a running one is a 409; an unknown one 404", async () => {
    const row = register("doomed");
    await ollama.delete({ model: "doomed:latest" });
    expect(srv.services.registry.get("doomed")).toBeUndefined();
    expect(existsSync(row.path)).toBe(true);
    await expectOllamaError(ollama.delete({ model: "doomed" }), 404, /not found/);
    expect(status("tiny")).toBe("running");
    await expectOllamaError(ollama.delete({ model: "tiny" }), 409, /running/);
  });
});

describe("Ollama's documented curl requests, byte for byte", () => {
  beforeAll(async () => {
    await boot();
    register("llama3.2");
  });
  afterAll(async () => {
    await srv?.stop();
  });

  // `curl URL -d '{...}'` sends Content-Type: application/x-www-form-urlencoded.
  const curl = (path: string, body: string, method = "POST") =>
    fetch(`${srv.url}${path}`, { method, headers: { "content-type": "application/x-www-form-urlencoded", "user-agent": "curl/8.5.0" }, body });

  test("POST /api/generate streams NDJSON; stream:false answers one object", async () => {
    const res = await curl("/api/generate", '{\n  "model": "llama3.2",\n  "prompt": "Why is the sky blue?"\n}');
    expect(res.status).toBe(200);
    const lines = (await res.text()).trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ model: "llama3.2", done: true, response: "" });
    expect(lines.slice(0, -1).every((l) => l.done === false && typeof l.response === "string")).toBe(true);
    const one = await (await curl("/api/generate", '{"model": "llama3.2", "prompt": "Why is the sky blue?", "stream": false}')).json();
    expect(one).toMatchObject({ model: "llama3.2", done: true });
    expect(one.response.length).toBeGreaterThan(0);
  });

  test("POST /api/chat with the documented options, format and history", async () => {
    const res = await curl(
      "/api/chat",
      JSON.stringify({
        model: "llama3.2",
        messages: [{ role: "user", content: "why is the sky blue?" }, { role: "assistant", content: "due to rayleigh scattering." }, { role: "user", content: "how is that different than mie scattering?" }],
        stream: false,
        format: { type: "object", properties: { age: { type: "integer" } }, required: ["age"] },
        options: { seed: 101, temperature: 0, num_ctx: 1024, num_thread: 8, stop: ["\n", "user:"], num_predict: 3 },
      }),
    );
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ model: "llama3.2", done: true, message: { role: "assistant" }, eval_count: 3 });
  });

  test("GET /api/tags, /api/ps, /api/version; POST /api/show; DELETE with a body", async () => {
    expect((await (await fetch(`${srv.url}/api/tags`)).json()).models[0].name).toBe("llama3.2:latest");
    expect((await (await fetch(`${srv.url}/api/ps`)).json()).models).toBeArray();
    expect((await (await fetch(`${srv.url}/api/version`)).json()).version).toBeString();
    expect((await (await curl("/api/show", '{"model": "llama3.2"}')).json()).details.format).toBe("gguf");
    expect((await curl("/api/delete", '{"model": "llama3:13b"}', "DELETE")).status).toBe(404);
  });

  test.each([
    ["/api/chat", "", 400, "missing request body"],
    ["/api/chat", "{not json", 400, "invalid JSON"],
    ["/api/chat", '{"model": "llama3.2", "messages": "hi"}', 400, "messages"],
    ["/api/chat", '{"messages": []}', 400, "model is required"],
    ["/api/generate", '{"model": "llama3.2", "prompt": "x", "keep_alive": "soon"}', 400, 'time: invalid duration "soon"'],
    ["/api/generate", '{"model": "llama3.2", "prompt": "x", "options": {"temperature": "hot"}}', 400, 'option "temperature" must be a number'],
    ["/api/generate", '{"model": "llama3.2", "prompt": "x", "raw": true, "system": "s"}', 400, "raw mode does not support template, system, or context"],
    ["/api/embed", '{"model": "llama3.2", "input": [1, 2]}', 400, "input"],
  ])("POST %s %p -> %p {error: %p}", async (path, body, code, message) => {
    const res = await curl(path, body);
    expect(res.status).toBe(code);
    const json = await res.json();
    expect(Object.keys(json)).toEqual(["error"]);
    expect(json.error).toContain(message);
  });

  test("a body over the limit is Ollama's 413", async () => {
    const res = await curl("/api/chat", JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: "x".repeat(300 * 1024) }] }));
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/too large/);
  });

  test("the seed's /api routes answer exactly as before, beside Ollama's", async () => {
    const health = await (await fetch(`${srv.url}/api/health`)).json();
    expect(health).toMatchObject({ success: true });
    const models = await (await fetch(`${srv.url}/api/models`)).json();
    expect(models.success).toBe(true);
    expect(models.data.count).toBe(1);
    expect(models.data.models.map((m: { id: string }) => m.id)).toEqual(["llama3.2"]);
    for (const path of ["/api/config", "/api/status", "/api/monitoring", "/api/logs"]) {
      const res = await fetch(`${srv.url}${path}`);
      expect(res.status).toBe(200);
      expect((await res.json()).success).toBe(true);
    }
    // The seed's JSON rule still holds on its routes (Ollama's routes take curl's form type).
    const form = await curl("/api/models", '{"models": []}');
    expect(form.status).toBe(400);
    expect((await form.json()).error.code).toBe("VALIDATION_ERROR");
    // Unknown /api paths keep the envelope.
    expect((await (await fetch(`${srv.url}/api/nothing`)).json()).error.code).toBe("NOT_FOUND");
  });

  test("Ollama requests count like /v1 requests (statistics, lastUsed)", async () => {
    const before = (await (await fetch(`${srv.url}/api/status`)).json()).data.performance.requests_total;
    await curl("/api/generate", '{"model": "llama3.2", "prompt": "x", "stream": false, "options": {"num_predict": 1}}');
    await waitFor(async () => (await (await fetch(`${srv.url}/api/status`)).json()).data.performance.requests_total === before + 1, "the request to be counted");
    expect(srv.services.registry.get("llama3.2")!.lastUsed).toBeString();
  });

  test("Ollama requests are in the activity log, refused ones too, with their X-Request-Id", async () => {
    const ok = await curl("/api/chat", '{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "options": {"num_predict": 2}}');
    const okId = ok.headers.get("x-request-id");
    expect(okId).toBeString();
    await ok.text();
    const refused = await curl("/api/chat", '{"model": "nope", "messages": [{"role": "user", "content": "x"}]}');
    expect(refused.status).toBe(404);
    const refusedId = refused.headers.get("x-request-id");
    const entries = await waitFor(async () => {
      const { data } = await (await fetch(`${srv.url}/api/activity?limit=50`)).json();
      const found = data.entries.filter((e: { requestId: string }) => e.requestId === okId || e.requestId === refusedId);
      return found.length === 2 ? found : null;
    }, "both requests in the activity log");
    const byId = Object.fromEntries(entries.map((e: { requestId: string }) => [e.requestId, e]));
    expect(byId[okId!]).toMatchObject({ model: "llama3.2", route: "/api/chat", status: 200, streaming: true, completionTokens: 2 });
    expect(byId[refusedId!]).toMatchObject({ model: "nope", route: "/api/chat", status: 404 });
  });
});

describe("Ollama routes with --api-key", () => {
  beforeAll(async () => {
    await boot({ apiKey: "s3cret" });
    register("keyed");
  });
  afterAll(async () => {
    await srv?.stop();
  });

  test("without the key: 401 in Ollama's shape on Ollama routes, the envelope on the seed's", async () => {
    const res = await fetch(`${srv.url}/api/tags`);
    expect(res.status).toBe(401);
    expect(typeof (await res.json()).error).toBe("string");
    const seed = await fetch(`${srv.url}/api/models`);
    expect(seed.status).toBe(401);
    expect((await seed.json()).error.code).toBe("UNAUTHORIZED");
    const anonymous = new Ollama({ host: srv.url });
    await expectOllamaError(anonymous.chat({ model: "keyed", messages: [{ role: "user", content: "x" }] }), 401, /unauthorized/);
  });

  test("ollama-js with Authorization: Bearer gets through", async () => {
    expect((await ollama.list()).models.map((m) => m.name)).toEqual(["keyed:latest"]);
    const res = await ollama.generate({ model: "keyed", prompt: "x", options: { num_predict: 2 } });
    expect(res.eval_count).toBe(2);
  });
});

describe("Ollama routes share the pool's limits", () => {
  beforeAll(async () => {
    await boot({ config: { maxConcurrentRequests: 1, maxQueuedRequests: 1 } });
    register("single", { extraArgs: ["--fake-token-delay-ms", "100"] });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  test("a request beyond the model's queue is Ollama's 429 with Retry-After", async () => {
    await ollama.chat({ model: "single", messages: [] }); // loaded
    const first = await ollama.generate({ model: "single", prompt: "x", stream: true, options: { num_predict: 20 } });
    const it = first[Symbol.asyncIterator]();
    await it.next(); // in flight: the one slot is taken
    const queued = fetch(`${srv.url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "single", prompt: "y", options: { num_predict: 1 } }) });
    await waitFor(() => srv.services.pool.queued("single") === 1, "the second request to queue");
    const res = await fetch(`${srv.url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "single", prompt: "z" }) });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("1");
    expect((await res.json()).error).toMatch(/Too many requests/);
    first.abort();
    // The queued one gets the slot once the first is gone.
    const lines = (await (await queued).text()).trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1).done).toBe(true);
  });
});
