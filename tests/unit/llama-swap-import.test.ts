import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cudaDevicesToArgs, ImportError, literalGlob, mapLlamaServerArgs, planLlamaSwapImport, type LlamaSwapPlan } from "../../src/import/llama-swap";
import { splitCommand, splitWords } from "../../src/import/shell-words";
import { rewriteBody } from "../../src/proxy/rewrite";

const FIXTURES = join(import.meta.dir, "../fixtures/llama-swap");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const plan = (yaml: string, env: Record<string, string> = {}) => planLlamaSwapImport(yaml, { env, baseDir: "/models" });
const reasonOf = (p: LlamaSwapPlan, item: string) => p.notImported.find((n) => n.item === item)?.reason;

describe("shell word splitting (llama-swap's SanitizeCommand)", () => {
  const cases: [string, string[]][] = [
    ["a b  c", ["a", "b", "c"]],
    ["a\n--x 1\n\n--y", ["a", "--x", "1", "--y"]],
    ["'/models/a b.gguf' x", ["/models/a b.gguf", "x"]],
    ['"say \\"hi\\"" \\$HOME', ['say "hi"', "$HOME"]],
    ["a\\ b", ["a b"]],
    ["''", [""]],
    ["--chat-template-kwargs '{\"a\": 1}'", ["--chat-template-kwargs", '{"a": 1}']],
  ];
  for (const [input, words] of cases) test(JSON.stringify(input), () => expect(splitWords(input)).toEqual(words));

  test("comment lines go, a trailing backslash joins lines", () => {
    expect(splitCommand("# a comment\nllama-server \\\n  -m x.gguf\n  # ${ignored}\n  -c 4")).toEqual(["llama-server", "-m", "x.gguf", "-c", "4"]);
  });
  test("an unterminated quote is an error, not a guess", () => {
    expect(() => splitWords("a 'b")).toThrow("unterminated single quote");
    expect(() => splitWords('a "b')).toThrow("unterminated double quote");
  });
});

describe("mapLlamaServerArgs", () => {
  const cases: { args: string[]; expect: Partial<ReturnType<typeof mapLlamaServerArgs>> }[] = [
    { args: ["-m", "a.gguf"], expect: { path: "a.gguf", settings: {}, extraArgs: [] } },
    { args: ["--model=a.gguf", "--ctx-size=8192"], expect: { path: "a.gguf", settings: { ctxSize: 8192 } } },
    { args: ["-m", "a.gguf", "-c", "4096", "-ngl", "99", "-t", "8", "-b", "256"], expect: { settings: { ctxSize: 4096, gpuLayers: 99, threads: 8, batchSize: 256 } } },
    { args: ["-m", "a", "--n-gpu-layers", "all"], expect: { settings: { gpuLayers: -1 } } },
    { args: ["-m", "a", "--gpu-layers", "auto"], expect: { settings: {}, dropped: [{ arg: "--gpu-layers auto", reason: "uses the configured gpu_layers instead (only a number or 'all' maps)" }] } },
    { args: ["-m", "a", "--host", "0.0.0.0", "--port", "9999"], expect: { extraArgs: [], dropped: [{ arg: "--host 0.0.0.0", reason: "the proxy chooses the address of every llama-server" }, { arg: "--port 9999", reason: "the proxy chooses the address of every llama-server" }] } },
    { args: ["-m", "a", "-ctk", "q8_0", "-ctv", "q8_0", "-md", "d.gguf", "--jinja", "-fa", "on"], expect: { extraArgs: ["-ctk", "q8_0", "-ctv", "q8_0", "-md", "d.gguf", "--jinja", "-fa", "on"] } },
    { args: ["-m", "a", "-a", "x,y"], expect: { aliases: ["x", "y"] } },
    { args: ["-hf", "org/repo:Q4"], expect: { path: undefined, remoteModel: "-hf org/repo:Q4" } },
    { args: ["-m", "a", "--mmproj", "p.gguf"], expect: { mmprojPath: "p.gguf", extraArgs: [] } },
    { args: ["-m", "a", "-c", "lots"], expect: { settings: {}, dropped: [{ arg: "-c lots", reason: "not a whole number" }] } },
    // A negative number is a value, not a flag.
    { args: ["-m", "a", "--seed", "-1"], expect: { extraArgs: ["--seed", "-1"] } },
  ];
  for (const c of cases) {
    test(c.args.join(" "), () => {
      const got = mapLlamaServerArgs(c.args);
      for (const [k, v] of Object.entries(c.expect)) expect(got[k as keyof typeof got]).toEqual(v as never);
    });
  }
});

test("CUDA_VISIBLE_DEVICES maps to --device for device numbers only", () => {
  expect(cudaDevicesToArgs("0,1,2")).toEqual(["--device", "CUDA0,CUDA1,CUDA2"]);
  expect(cudaDevicesToArgs("1")).toEqual(["--device", "CUDA1"]);
  expect(cudaDevicesToArgs("GPU-8f3e1c")).toBeNull();
  expect(cudaDevicesToArgs("")).toBeNull();
});

describe("macros, as llama-swap expands them", () => {
  test("macro-in-macro, typed direct substitution, model macros override in place", () => {
    const p = plan(`
macros:
  bin: "/opt/llama-server --port \${PORT}"
  ctx: 4096
  args: "--ctx-size \${ctx}"
models:
  m1:
    macros:
      ctx: 16384
    cmd: \${bin} -m /m/a.gguf \${args}
    ttl: \${ctx}
`);
    expect(p.models).toHaveLength(1);
    // args uses ctx, declared before it; m1's ctx replaces the global one.
    expect(p.models[0]!.entry.settings).toEqual({ ctxSize: 16384, idleTimeoutSeconds: 16384 });
    expect(p.models[0]!.notes).toContain("left out --port 5800: the proxy chooses the address of every llama-server");
  });

  test("a macro may only use macros declared before it", () => {
    const p = plan(`
macros:
  args: "--ctx-size \${ctx}"
  ctx: 4096
models:
  m1:
    cmd: llama-server -m /m/a.gguf \${args}
`);
    expect(p.models).toHaveLength(0);
    expect(reasonOf(p, "models.m1")).toBe("unknown macro ${ctx} in cmd");
  });

  test("${PORT} counts up from startPort in model-id order, only for models whose cmd uses it", () => {
    const p = plan(`
startPort: 7000
models:
  zed: { cmd: "llama-server -m /m/z.gguf --port \${PORT}" }
  alpha: { cmd: "llama-server -m /m/a.gguf --port \${PORT}" }
  beta: { cmd: "llama-server -m /m/b.gguf" }
  gamma: { cmd: "llama-server -m /m/g.gguf --port \${PORT}" }
`);
    const portOf = (id: string) => p.models.find((m) => m.from === id)!.notes.find((n) => n.startsWith("left out --port"));
    expect(portOf("alpha")).toContain("--port 7000");
    expect(portOf("gamma")).toContain("--port 7001");
    expect(portOf("zed")).toContain("--port 7002");
  });

  test("${MODEL_ID} and ${env.NAME}; an unset variable blocks only what uses it", () => {
    const p = plan(`
macros:
  dir: "\${env.MODELS}"
apiKeys: ["\${env.NOT_SET_KEY}"]
models:
  Qwen3-8B:
    cmd: llama-server -m \${dir}/\${MODEL_ID}.gguf
  other:
    cmd: llama-server -m \${env.ALSO_UNSET}/x.gguf
`, { MODELS: "/srv/models" });
    expect(p.models.map((m) => [m.from, m.entry.id, m.entry.path])).toEqual([["Qwen3-8B", "qwen3-8b", "/srv/models/Qwen3-8B.gguf"]]);
    // The llama-swap id stays usable as an alias when our id differs.
    expect(p.models[0]!.entry.settings.aliases).toEqual(["Qwen3-8B"]);
    expect(reasonOf(p, "models.other")).toBe("environment variable ALSO_UNSET is not set");
  });

  const bad: [string, string][] = [
    ["macros:\n  PORT: 1\nmodels: {a: {cmd: x}}", "macros: macro name 'PORT' is reserved"],
    ["macros:\n  a: 'x ${a}'\nmodels: {a: {cmd: x}}", "macros: macro 'a' refers to itself"],
    ["macros:\n  'a b': 1\nmodels: {a: {cmd: x}}", "macros: macro name 'a b' must match ^[a-zA-Z0-9_-]+$"],
    ["macros:\n  a: [1]\nmodels: {a: {cmd: x}}", "macros: macro 'a' must be a string, number or boolean"],
    ["models: [1, 2]", "Not a llama-swap configuration: it has no models section"],
    ["- a\n- b", "Not a llama-swap configuration: the file must be a YAML mapping (models: ...)"],
  ];
  for (const [yaml, message] of bad) test(`refused: ${message}`, () => expect(() => plan(yaml)).toThrow(message));

  test("broken YAML names the line", () => {
    try {
      plan("models:\n  a:\n    cmd: [unclosed\n");
      throw new Error("no error");
    } catch (err) {
      expect(err).toBeInstanceOf(ImportError);
      expect((err as Error).message).toMatch(/^Not valid YAML: .*line \d+/s);
    }
  });

  test("a YAML alias bomb is refused instead of expanded", () => {
    const bomb = ["a: &a [x,x,x,x,x,x,x,x,x,x]"];
    for (let i = 0; i < 8; i++) bomb.push(`${"bcdefghi"[i]}: &${"bcdefghi"[i]} [${Array(10).fill(`*${"abcdefgh"[i]}`).join(",")}]`);
    bomb.push("models: {m: {cmd: x}}");
    expect(() => plan(bomb.join("\n"))).toThrow(ImportError);
  });
});

describe("the real llama-swap example files", () => {
  test("config.example.yaml: the llama-server model with its settings, everything else listed with a reason", () => {
    const p = plan(fixture("config.example.yaml"), { HOME: "/home/u" });
    expect(p.models.map((m) => m.from)).toEqual(["gpt-oss-120b"]);
    const m = p.models[0]!;
    expect(m.entry).toEqual({
      id: "gpt-oss-120b",
      path: "/models/path/to/gpt-oss-120B.gguf",
      name: "gpt-oss 120B",
      description: "A thinking model from OpenAI",
      settings: {
        // ${default_ctx}: the model's macro (16384) wins over the global 4096.
        ctxSize: 16384,
        extraArgs: ["--temperature", "0.7", "--device", "CUDA0,CUDA1,CUDA2"],
        aliases: ["gpt-4o-mini"],
        idleTimeoutSeconds: 60,
        rewrite: { strip: ["temperature", "top_k", "top_p"], overrides: { temperature: 0.7, top_p: 0.9 } },
      },
    });
    // startPort 10001, sorted ids: docker-llama gets 10001, gpt-oss-120b 10002.
    expect(m.notes).toContain("left out --port 10002: the proxy chooses the address of every llama-server");
    expect(p.config).toEqual({ loadTimeoutSeconds: 500, idleTimeoutSeconds: 0, stopTimeoutSeconds: 10, captureMaxMB: 15 });
    expect(reasonOf(p, "models.docker-llama")).toBe("runs a container (docker): only llama-server models can be imported");
    expect(reasonOf(p, "models.unlisted-model")).toBe("runs some-upstream-server, not llama-server: only llama-server models can be imported");
    expect(reasonOf(p, "models.gpt-oss-120b.filters.setParamsByID")).toStartWith("no per-alias parameters");
    // peers: is mapped now (its own test below); only what has no equivalent is listed.
    expect(reasonOf(p, "peers")).toBeUndefined();
    expect(p.peers.map((x) => x.peer.name)).toEqual(["llama-swap-peer", "openrouter"]);
    expect(reasonOf(p, "groups")).toContain("set maxLoadedModels to that");
    expect(reasonOf(p, "hooks.on_startup.preload llama")).toBe("no imported model has that name");
    // Every top-level key of the file is either mapped or listed.
    const listed = new Set(p.notImported.map((n) => n.item.split(/[. ]/)[0]));
    for (const key of ["logLevel", "apiKeys", "profiles", "selectors", "upstream", "ui", "performance", "startPort"]) expect(listed.has(key)).toBe(true);
    // 31 before peers were mapped: "peers" went, openrouter's unset apiKey, timeouts and filters
    // came; captureBuffer maps to captureMaxMB now.
    expect(reasonOf(p, "captureBuffer")).toBeUndefined();
    expect(p.notImported.length).toBe(32);
  });

  test("config.example.yaml peers: url, exact model ids, the key from the environment or listed when unset", () => {
    const withoutKey = plan(fixture("config.example.yaml"), { HOME: "/home/u" });
    expect(withoutKey.peers.map((x) => [x.item, x.peer])).toEqual([
      ["peers.llama-swap-peer", { name: "llama-swap-peer", url: "http://192.168.1.23", models: ["model_a", "model_b", "embeddings/model_c"] }],
      [
        "peers.openrouter",
        {
          name: "openrouter",
          url: "https://openrouter.ai/api",
          models: ["meta-llama/llama-3.1-8b-instruct", "qwen/qwen3-235b-a22b-2507", "deepseek/deepseek-v3.2", "z-ai/glm-4.7", "moonshotai/kimi-k2-0905", "minimax/minimax-m2.1"],
        },
      ],
    ]);
    expect(reasonOf(withoutKey, "peers.openrouter.apiKey")).toBe("environment variable OPENROUTER_API_KEY, which is not set: the peer is added without a key (add apiKey to it in the config)");
    expect(reasonOf(withoutKey, "peers.openrouter.filters")).toStartWith("no per-peer request rewriting");
    expect(reasonOf(withoutKey, "peers.openrouter.timeouts")).toStartWith("peer timeouts are the proxy's own");
    expect(withoutKey.peers[0]!.notes[0]).toContain("'llama-swap-peer/<model>' names are not recognised here");

    const withKey = plan(fixture("config.example.yaml"), { HOME: "/home/u", OPENROUTER_API_KEY: "sk-or-v1-abc" });
    expect(withKey.peers[1]!.peer.apiKey).toBe("sk-or-v1-abc");
    expect(reasonOf(withKey, "peers.openrouter.apiKey")).toBeUndefined();
  });

  test("the docker example has no peers", () => {
    expect(plan(fixture("docker-config.example.yaml")).peers).toEqual([]);
  });

  test("docker-config.example.yaml: -hf models and sd-server are listed, not imported", () => {
    const p = plan(fixture("docker-config.example.yaml"));
    expect(p.models).toEqual([]);
    expect(p.config).toEqual({ loadTimeoutSeconds: 300 });
    expect(reasonOf(p, "models.qwen2.5")).toBe("the model is downloaded by llama-server (-hf bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M): download the GGUF file and register its path");
    expect(reasonOf(p, "models.smollm2")).toStartWith("the model is downloaded by llama-server");
    expect(reasonOf(p, "models.z-image")).toBe("runs sd-server, not llama-server: only llama-server models can be imported");
    expect(reasonOf(p, "logRequests")).toBeDefined();
  });

  test("preload -> autoStart, unknown keys listed, managed flags never reach extraArgs", () => {
    const p = plan(`
hooks: { on_startup: { preload: [fast] } }
colour: blue
models:
  m:
    aliases: [fast]
    cmd: llama-server -m /m/a.gguf --alias mine -c 2048 --verbose
    frobnicate: true
`);
    expect(p.models[0]!.entry.settings).toEqual({ ctxSize: 2048, extraArgs: ["--verbose"], aliases: ["fast", "mine"], autoStart: true });
    expect(reasonOf(p, "colour")).toBe("unknown llama-swap setting");
    expect(reasonOf(p, "models.m.frobnicate")).toBe("unknown llama-swap setting");
  });
});

describe("peers from llama-swap", () => {
  test("a model llama-swap only proxies to another host becomes a peer; a remote llama-server it runs stays a local model", () => {
    const p = plan(`
macros: { box: "http://10.0.0.7:9000" }
models:
  remote-only:
    proxy: \${box}
    cmd: ""
    ttl: 60
  vllm-box:
    cmd: docker run --rm vllm/vllm-openai --model Qwen/Qwen2.5-7B
    proxy: https://gpu.example.net/base/
    useModelName: Qwen/Qwen2.5-7B
    aliases: [qwen]
  bound-to-lan:
    cmd: llama-server -m /m/a.gguf --host 0.0.0.0 --port 8081
    proxy: http://192.168.1.9:8081
  local-docker:
    cmd: docker run x
    proxy: http://127.0.0.1:9999
peers:
  "bad peer!":
    proxy: ftp://files.example
    models: [a]
  empty: { proxy: "http://10.0.0.8" }
  vllm-box: { proxy: "http://10.0.0.9", models: ["x*y", "[z]"] }
`);
    expect(p.peers.map((x) => [x.item, x.peer])).toEqual([
      ["models.remote-only", { name: "remote-only", url: "http://10.0.0.7:9000", models: ["remote-only"] }],
      // Trailing slash trimmed; the remote's own name (useModelName) is what routes.
      ["models.vllm-box", { name: "vllm-box", url: "https://gpu.example.net/base", models: ["Qwen/Qwen2.5-7B"] }],
      // The same name again gets a suffix; glob characters of llama-swap's exact ids are escaped.
      ["peers.vllm-box", { name: "vllm-box-2", url: "http://10.0.0.9", models: ["x\\*y", "\\[z\\]"] }],
    ]);
    expect(p.peers[1]!.notes).toEqual([
      "its cmd (docker) is not run here: the server at https://gpu.example.net/base/ must already be running",
      "clients ask for it as 'Qwen/Qwen2.5-7B' (useModelName): llama-swap's id 'vllm-box' is not an alias of a peer's model here",
    ]);
    expect(reasonOf(p, "models.remote-only.ttl")).toBe("the model is served by a peer: per-model settings do not apply to it");
    expect(reasonOf(p, "models.vllm-box.aliases")).toBe("a peer's models are asked for by the ids the peer lists");
    expect(p.models.map((m) => m.from)).toEqual(["bound-to-lan"]);
    expect(p.models[0]!.notes).toContain("proxy http://192.168.1.9:8081 ignored: the proxy talks to the llama-server it starts");
    expect(reasonOf(p, "models.local-docker")).toBe("runs a container (docker): only llama-server models can be imported");
    expect(reasonOf(p, "peers.bad peer!")).toBe("not a valid peer here: url: peer url must use http or https, not ftp");
    expect(reasonOf(p, "peers.empty")).toBe("it lists no models (llama-swap routes only the models listed)");
  });

  test("literalGlob: an exact id matches itself only", () => {
    for (const id of ["a*b", "x?[y]", "{a,b}", "back\\slash", "!neg", "meta-llama/llama-3.1-8b"]) {
      const g = new Bun.Glob(literalGlob(id));
      expect(g.match(id)).toBe(true);
    }
    expect(new Bun.Glob(literalGlob("a*b")).match("aXb")).toBe(false);
    expect(new Bun.Glob(literalGlob("x?")).match("xy")).toBe(false);
  });
});

describe("rewriteBody", () => {
  const cases: { name: string; body: Record<string, unknown>; rules: Parameters<typeof rewriteBody>[1]; want: Record<string, unknown>; changed: string[] }[] = [
    { name: "no rules", body: { a: 1 }, rules: undefined, want: { a: 1 }, changed: [] },
    { name: "default when absent", body: { model: "m" }, rules: { defaults: { temperature: 0.2 } }, want: { model: "m", temperature: 0.2 }, changed: ["temperature"] },
    { name: "default not over the client's", body: { temperature: 1 }, rules: { defaults: { temperature: 0.2 } }, want: { temperature: 1 }, changed: [] },
    { name: "override always", body: { temperature: 1 }, rules: { overrides: { temperature: 0.2 } }, want: { temperature: 0.2 }, changed: ["temperature"] },
    { name: "override equal to the client's is no change", body: { top_p: 0.9 }, rules: { overrides: { top_p: 0.9 } }, want: { top_p: 0.9 }, changed: [] },
    { name: "strip", body: { top_k: 5, a: 1 }, rules: { strip: ["top_k", "absent"] }, want: { a: 1 }, changed: ["top_k"] },
    { name: "strip then default replaces the client's value", body: { temperature: 1 }, rules: { strip: ["temperature"], defaults: { temperature: 0.3 } }, want: { temperature: 0.3 }, changed: ["temperature"] },
    { name: "objects as values", body: {}, rules: { overrides: { chat_template_kwargs: { reasoning_effort: "high" } } }, want: { chat_template_kwargs: { reasoning_effort: "high" } }, changed: ["chat_template_kwargs"] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const before = structuredClone(c.body);
      const got = rewriteBody(c.body, c.rules);
      expect(got.body).toEqual(c.want);
      expect(got.changed.sort()).toEqual(c.changed.sort());
      expect(c.body).toEqual(before); // pure: the input is not modified
    });
  }
});
