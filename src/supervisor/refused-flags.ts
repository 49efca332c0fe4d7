/**
 * llama-server flags a model's `extraArgs` (or anything else that reaches a child's argv from the
 * API, the console or an import) may not carry, each with the reason. One table: the model
 * schema (PATCH /api/models, registration), buildServerArgs (every start) and the docs
 * (README, SECURITY.md) all read it. Gone through against llama-server's own --help
 * (shared/fixtures/llama-server/llama-server-help.txt), every spelling listed.
 *
 * The line drawn: flags that change where or how the child is reached (binding, auth, TLS, CORS),
 * that make it serve, read or write files of the caller's choosing, run programs or tools, or
 * fetch other models. Whoever can edit a model must not gain a shell, the files of the user, or
 * a door around the proxy. Everything else (sampling, context, GPU split, templates by name,
 * LoRA/draft GGUF files) passes.
 */
export interface RefusedFlag {
  flags: readonly string[];
  reason: string;
}

export const REFUSED_FLAGS: readonly RefusedFlag[] = [
  // The supervisor's own choices: the proxy routes by the port and alias it picked.
  { flags: ["-m", "--model"], reason: "the supervisor chooses the model file" },
  { flags: ["-a", "--alias"], reason: "the supervisor chooses the alias it routes by" },
  { flags: ["--host", "--port", "--reuse-port"], reason: "the supervisor chooses the address (loopback) and port of every llama-server" },
  { flags: ["--api-prefix"], reason: "the proxy relies on llama-server's paths" },
  // Auth, TLS, CORS: each child has its own key and is reached only through the proxy.
  { flags: ["--api-key", "--api-key-file"], reason: "the supervisor gives each llama-server its own key" },
  { flags: ["--ssl-key-file", "--ssl-cert-file"], reason: "TLS belongs in front of the proxy, and the files are read from disk" },
  { flags: ["--cors-origins", "--cors-methods", "--cors-headers", "--cors-credentials", "--no-cors-credentials"], reason: "changes which web pages may call the llama-server" },
  // Serving, reading or writing files.
  { flags: ["--path"], reason: "serves any directory over HTTP" },
  { flags: ["--media-path"], reason: "lets requests read local files through file:// URLs" },
  { flags: ["--slot-save-path"], reason: "lets requests write KV-cache files into a directory" },
  { flags: ["--log-file"], reason: "writes (overwrites) a file of the caller's choosing" },
  { flags: ["--log-prompts-dir"], reason: "writes every prompt into a directory" },
  { flags: ["-lcs", "--lookup-cache-static", "-lcd", "--lookup-cache-dynamic"], reason: "reads or writes a cache file of the caller's choosing" },
  { flags: ["--ui-config-file", "--webui-config-file"], reason: "reads a file and serves it to the web UI" },
  { flags: ["-jf", "--json-schema-file", "--grammar-file"], reason: "reads a file whose content can come back in responses or the log" },
  { flags: ["--chat-template-file"], reason: "reads a file that GET /props serves back (use --chat-template <name> or a template in the GGUF)" },
  { flags: ["--models-dir", "--models-preset", "--models-max", "--models-autoload", "--no-models-autoload"], reason: "turns the child into a router that loads other models" },
  // Running programs and tools.
  { flags: ["--tools", "--tools-runtime"], reason: "enables built-in tools such as exec_shell_command and write_file" },
  { flags: ["--mcp-servers-config", "--mcp-servers-json"], reason: "starts MCP servers (programs) and tools" },
  { flags: ["-ag", "--agent"], reason: "enables every built-in tool and a CORS proxy" },
  { flags: ["--ui-mcp-proxy", "--webui-mcp-proxy"], reason: "a CORS proxy: the child would fetch any URL for a web page" },
  { flags: ["--video-ffmpeg-dir"], reason: "runs ffmpeg/ffprobe from a directory of the caller's choosing" },
  // Fetching other models from the network (the supervisor chooses the model file).
  { flags: ["-mu", "--model-url", "-hf", "-hfr", "--hf-repo", "-hff", "--hf-file", "-hft", "--hf-token", "-dr", "--docker-repo", "-hfd", "-hfrd", "--hf-repo-draft", "--spec-draft-hf", "-mmu", "--mmproj-url"], reason: "downloads and runs a model the supervisor did not choose" },
  {
    flags: ["--embd-gemma-default", "--fim-qwen-1.5b-default", "--fim-qwen-3b-default", "--fim-qwen-7b-default", "--fim-qwen-7b-spec", "--fim-qwen-14b-spec", "--fim-qwen-30b-default", "--gpt-oss-20b-default", "--gpt-oss-120b-default", "--vision-gemma-4b-default", "--vision-gemma-12b-default"],
    reason: "downloads and runs a preset model instead of the registered one",
  },
];

const BY_FLAG = new Map<string, string>(REFUSED_FLAGS.flatMap((r) => r.flags.map((f) => [f, r.reason] as const)));

/** The first refused flag in an argv list (as `--flag` or `--flag=value`), with why; null if none. */
export function findRefusedFlag(args: readonly unknown[]): { flag: string; reason: string } | null {
  for (const arg of args) {
    if (typeof arg !== "string" || !arg.startsWith("-")) continue;
    const flag = arg.split("=", 1)[0]!;
    const reason = BY_FLAG.get(flag);
    if (reason) return { flag, reason };
  }
  return null;
}
