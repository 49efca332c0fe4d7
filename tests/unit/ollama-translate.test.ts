import { describe, expect, test } from "bun:test";
import { DurationError, parseGoDuration, parseKeepAlive } from "../../src/ollama/duration";
import { candidateNames, ollamaName, resolveOllamaName, splitTag } from "../../src/ollama/names";
import { mapOptions, OptionsError } from "../../src/ollama/options";
import { chatRequestSchema, generateRequestSchema } from "../../src/ollama/schema";
import {
  chatToUpstream,
  embedInputs,
  generateToUpstream,
  imageMime,
  messageToOpenAi,
  responseFormat,
  thinkFields,
  TranslateError,
} from "../../src/ollama/translate";

describe("Ollama model names", () => {
  test.each([
    ["llama3.2", { base: "llama3.2" }],
    ["llama3.2:latest", { base: "llama3.2", tag: "latest" }],
    ["llama3.2:3b-q4", { base: "llama3.2", tag: "3b-q4" }],
    ["hf.co/org/model:Q4_K_M", { base: "hf.co/org/model", tag: "Q4_K_M" }],
    ["localhost:5000/org/model", { base: "localhost:5000/org/model" }],
    ["name:", { base: "name" }],
  ])("splitTag(%p)", (name, expected) => {
    expect(splitTag(name)).toEqual(expected);
  });

  test.each([
    ["llama3", ["llama3", "llama3:latest"]],
    ["llama3:latest", ["llama3:latest", "llama3"]],
    ["llama3:LATEST", ["llama3:LATEST", "llama3"]],
    // A real tag is never dropped: :1b and :3b must not collapse onto one model.
    ["llama3:3b", ["llama3:3b"]],
    ["library/llama3:latest", ["library/llama3:latest", "library/llama3", "llama3:latest", "llama3"]],
    ["  spaced  ", ["spaced", "spaced:latest"]],
    ["", []],
  ])("candidateNames(%p)", (name, expected) => {
    expect(candidateNames(name)).toEqual(expected);
  });

  test("ollamaName tags an id with :latest, and leaves a tagged alias alone", () => {
    expect(ollamaName("tiny-llama")).toBe("tiny-llama:latest");
    expect(ollamaName("qwen:7b")).toBe("qwen:7b");
  });

  test("resolveOllamaName finds ids, aliases written with or without :latest", () => {
    const known: Record<string, string> = { "tiny-llama": "row1", "llama3.2:latest": "row2", "qwen:7b": "row3" };
    const resolve = (n: string) => known[n];
    expect(resolveOllamaName("tiny-llama:latest", resolve)).toBe("row1");
    expect(resolveOllamaName("tiny-llama", resolve)).toBe("row1");
    expect(resolveOllamaName("llama3.2", resolve)).toBe("row2");
    expect(resolveOllamaName("qwen:7b", resolve)).toBe("row3");
    expect(resolveOllamaName("qwen", resolve)).toBeUndefined();
    expect(resolveOllamaName("qwen:14b", resolve)).toBeUndefined();
  });
});

describe("keep_alive", () => {
  test.each([
    ["5m", 300],
    ["1h30m", 5400],
    ["300ms", 0.3],
    ["1.5s", 1.5],
    ["0", 0],
    ["-1m", -60],
    ["2h0m0s", 7200],
  ])("parseGoDuration(%p) = %p s", (text, seconds) => {
    expect(parseGoDuration(text)).toBeCloseTo(seconds, 9);
  });

  test.each(["", "5", "m", "5 m", "5x", "1d"])("parseGoDuration(%p) is refused like Go's", (text) => {
    expect(() => parseGoDuration(text)).toThrow(DurationError);
  });

  test.each([
    [undefined, undefined],
    [null, undefined],
    [0, 0],
    [300, 300],
    [-1, Infinity],
    ["5m", 300],
    ["0", 0],
    ["-1", Infinity],
    ["-1m", Infinity],
    ["120", 120],
  ])("parseKeepAlive(%p) = %p", (value, expected) => {
    expect(parseKeepAlive(value)).toBe(expected as number | undefined);
  });

  test.each([[{}], [[1]], [true], ["soon"], [Number.NaN]])("parseKeepAlive(%p) throws", (value) => {
    expect(() => parseKeepAlive(value)).toThrow(DurationError);
  });
});

describe("options -> llama-server fields", () => {
  test("every sampling option lands under llama-server's name", () => {
    expect(
      mapOptions({
        temperature: 0.2, top_p: 0.9, top_k: 20, min_p: 0.05, typical_p: 0.7, seed: 42, num_predict: 100, num_keep: 5,
        repeat_penalty: 1.2, repeat_last_n: 33, presence_penalty: 1.5, frequency_penalty: 1, penalize_newline: true,
        mirostat: 1, mirostat_tau: 5, mirostat_eta: 0.1, stop: ["\n", "user:"],
      }),
    ).toEqual({
      temperature: 0.2, top_p: 0.9, top_k: 20, min_p: 0.05, typical_p: 0.7, seed: 42, n_predict: 100, n_keep: 5,
      repeat_penalty: 1.2, repeat_last_n: 33, presence_penalty: 1.5, frequency_penalty: 1, penalize_nl: true,
      mirostat: 1, mirostat_tau: 5, mirostat_eta: 0.1, stop: ["\n", "user:"],
    });
  });

  test.each([
    [{ num_ctx: 1024, num_gpu: 1, num_thread: 8, num_batch: 2, use_mmap: true, numa: false, main_gpu: 0 }, {}],
    [{ unknown_thing: 1 }, {}],
    [{ num_predict: -1 }, {}],
    [{ num_predict: -2 }, {}],
    [{ seed: -1 }, {}],
    [{ stop: "###" }, { stop: ["###"] }],
    [{ top_k: 40.0 }, { top_k: 40 }],
    [{ temperature: null }, {}],
  ])("mapOptions(%p)", (input, expected) => {
    expect(mapOptions(input)).toEqual(expected);
  });

  test.each([[{ temperature: "hot" }], [{ stop: [1] }], [{ penalize_newline: "yes" }], [{ stop: Array(17).fill("x") }], [{ top_k: "40" }]])(
    "mapOptions(%p) refuses a wrong type",
    (input) => {
      expect(() => mapOptions(input)).toThrow(OptionsError);
    },
  );
});

describe("requests -> llama-server", () => {
  const chat = (body: unknown) => chatRequestSchema.parse(body);
  const gen = (body: unknown) => generateRequestSchema.parse(body);

  test("a chat request becomes an OpenAI chat request with usage in the stream", () => {
    const up = chatToUpstream(chat({ model: "m", messages: [{ role: "user", content: "hi" }], options: { temperature: 0, num_predict: 5 } }), true);
    expect(up.path).toBe("/v1/chat/completions");
    expect(up.kind).toBe("chat");
    expect(up.body).toEqual({
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0,
      n_predict: 5,
    });
    expect(chatToUpstream(chat({ model: "m", messages: [] }), false).body).toEqual({ messages: [], stream: false });
  });

  test.each([
    [undefined, undefined],
    ["", undefined],
    ["json", { type: "json_object" }],
    [{ type: "object", properties: { age: { type: "integer" } } }, { type: "json_schema", json_schema: { name: "response", schema: { type: "object", properties: { age: { type: "integer" } } } } }],
  ])("format %p -> response_format %p", (format, expected) => {
    expect(responseFormat(format as never)).toEqual(expected as never);
  });

  test.each([
    [undefined, {}],
    [true, { chat_template_kwargs: { enable_thinking: true } }],
    [false, { chat_template_kwargs: { enable_thinking: false } }],
    ["low", { chat_template_kwargs: { enable_thinking: true }, reasoning_effort: "low" }],
    ["max", { chat_template_kwargs: { enable_thinking: true }, reasoning_effort: "high" }],
  ])("think %p", (think, expected) => {
    expect(thinkFields(think as never)).toEqual(expected);
  });

  test("images become OpenAI image parts with a data: URL of the right type", () => {
    const png = "iVBORw0KGgoAAAANSUhEUg";
    expect(imageMime(png)).toBe("image/png");
    expect(imageMime("/9j/4AAQSkZJRg")).toBe("image/jpeg");
    expect(messageToOpenAi({ role: "user", content: "what is this?", images: [png] })).toEqual({
      role: "user",
      content: [
        { type: "text", text: "what is this?" },
        { type: "image_url", image_url: { url: `data:image/png;base64,${png}` } },
      ],
    });
    expect(messageToOpenAi({ role: "user", content: "", images: ["data:image/webp;base64,AAAA"] }).content).toEqual([
      { type: "image_url", image_url: { url: "data:image/webp;base64,AAAA" } },
    ]);
  });

  test("tool history: assistant tool calls get string arguments, tool results their name", () => {
    const req = chat({
      model: "m",
      messages: [
        { role: "user", content: "weather in Toronto?" },
        { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: "Toronto" } } }] },
        { role: "tool", content: "11 degrees celsius", tool_name: "get_weather" },
      ],
      tools: [{ type: "function", function: { name: "get_weather", description: "d", parameters: { type: "object", properties: { city: { type: "string" } } } } }],
    });
    const up = chatToUpstream(req, false);
    expect(up.body.messages).toEqual([
      { role: "user", content: "weather in Toronto?" },
      { role: "assistant", content: "", tool_calls: [{ id: "call_0", type: "function", function: { name: "get_weather", arguments: '{"city":"Toronto"}' } }] },
      { role: "tool", content: "11 degrees celsius", name: "get_weather" },
    ]);
    expect(up.body.tools).toEqual([{ type: "function", function: { name: "get_weather", description: "d", parameters: { type: "object", properties: { city: { type: "string" } } } } }]);
  });

  test("generate: templated by default (system + prompt), raw to /completion, suffix to /infill", () => {
    const templated = generateToUpstream(gen({ model: "m", prompt: "Why?", system: "Be brief." }), true);
    expect(templated.path).toBe("/v1/chat/completions");
    expect(templated.body.messages).toEqual([{ role: "system", content: "Be brief." }, { role: "user", content: "Why?" }]);

    const raw = generateToUpstream(gen({ model: "m", prompt: "[INST] why? [/INST]", raw: true, stream: false, options: { seed: 1 }, format: "json" }), false);
    expect(raw).toEqual({ path: "/completion", body: { prompt: "[INST] why? [/INST]", stream: false, seed: 1, json_schema: {} }, kind: "completion" });

    const infill = generateToUpstream(gen({ model: "m", prompt: "def gcd(a, b):", suffix: "    return result", options: { temperature: 0 } }), false);
    expect(infill).toEqual({
      path: "/infill",
      body: { input_prefix: "def gcd(a, b):", input_suffix: "    return result", prompt: "", stream: false, temperature: 0 },
      kind: "completion",
    });
  });

  test.each([
    [{ raw: true, system: "x" }, "raw mode does not support template, system, or context"],
    [{ raw: true, context: [1, 2] }, "raw mode does not support template, system, or context"],
    [{ raw: true, images: ["iVBOR"] }, "images are not supported in raw mode"],
    [{ suffix: "x", images: ["iVBOR"] }, "images are not supported with suffix"],
  ])("generate %p is refused: %p", (extra, message) => {
    expect(() => generateToUpstream(gen({ model: "m", prompt: "p", ...extra }), false)).toThrow(TranslateError);
    expect(() => generateToUpstream(gen({ model: "m", prompt: "p", ...extra }), false)).toThrow(message);
  });

  test("embed input: a string is a batch of one", () => {
    expect(embedInputs("a")).toEqual(["a"]);
    expect(embedInputs(["a", "b"])).toEqual(["a", "b"]);
    expect(embedInputs(undefined)).toEqual([]);
  });

  test("the schemas take Ollama's documented bodies and refuse wrong types", () => {
    expect(chat({ model: "llama3.2", messages: [{ role: "user", content: "why is the sky blue?" }] }).messages![0]!.content).toBe("why is the sky blue?");
    expect(chatRequestSchema.safeParse({ model: "m", messages: "hi" }).success).toBe(false);
    expect(chatRequestSchema.safeParse({ model: "m", messages: [{ role: "user", content: 5 }] }).success).toBe(false);
    expect(chatRequestSchema.safeParse({ model: "m", think: "extreme" }).success).toBe(false);
    expect(generateRequestSchema.safeParse({ model: "m", prompt: "p", future_field: { x: 1 } }).success).toBe(true);
  });
});
