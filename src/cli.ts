import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { splitHostPort } from "./http/guard";
import { parseArgs } from "node:util";
import { LOG_LEVELS, type LogLevel } from "./logs/types";
import { parseWorkerCli, type WorkerCliResult } from "./rpc/cli";
import type { RuntimeOptions } from "./services";
import { parseKeysCommand, type KeysCommand } from "./keys/cli";
import { APP_NAME, APP_VERSION } from "./version";

export const HELP = `${APP_NAME} ${APP_VERSION}
Starts, watches and proxies llama.cpp's llama-server, with a web console and a JSON API.

Usage: llama-async-proxy [options]
       llama-async-proxy worker --api-key <key> [--rpc-host <addr>] [--rpc-port <n>] ...  (see worker --help)
       llama-async-proxy import llama-swap <config.yaml> [--dry-run] [--data-dir <dir>] [--config <file>]

Commands:
  keys add <name> [--scope admin|inference] [--models 'qwen*,llama-3*'] [--tokens-per-day N] [--requests-per-minute N]
                      Create a named API key (default scope inference) in the config file and
                      print it once; only its SHA-256 is stored. A running proxy picks it up.
  keys list | keys remove <name>
  import llama-swap <file>  Register the llama-server models of a llama-swap config.yaml (macros
                      expanded) and map its settings; prints what was imported and what was not,
                      and why. --dry-run prints the plan without changing anything. Relative model
                      paths are resolved against the current directory. Run it while the proxy is
                      stopped (or use POST /api/import/llama-swap on a running one).

Options:
  --port <n>          Port to serve on (env PORT, default 3000; 0 = any free port)
  --host <addr>       Address to bind (env HOST, default 127.0.0.1)
  --config <file>     llama-server-config.json path (env CONFIG_PATH, default <data-dir>/llama-server-config.json)
  --data-dir <dir>    SQLite database and runtime files (env DATA_DIR, default ./data)
  --log-level <lvl>   error | warn | info | debug (env LOG_LEVEL, default info)
  --api-key <key>     Require this key on /api, /v1 and the console (env API_KEY; visible in ps:
                      prefer API_KEY or --api-key-file)
  --api-key-file <f>  Read the key from this file (first line; env API_KEY_FILE)
  --allowed-hosts <a,b>  Host names accepted besides loopback and the bound address, e.g. behind a
                      reverse proxy or for a LAN name (env ALLOWED_HOSTS; "name:port" pins the port)
  --insecure-no-auth  Allow binding to a non-loopback address without an API key
  -h, --help          Show this help
  -v, --version       Show the version
`;

export class UsageError extends Error {}

/** The key is the file's first line, trimmed (so `echo key > file` works). */
function readKeyFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`Cannot read the API key file ${path}: ${(err as Error).message}`);
  }
  const key = text.split(/\r?\n/)[0]!.trim();
  if (!key) throw new UsageError(`The API key file ${path} is empty`);
  return key;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);
export const isLoopback = (host: string) => LOOPBACK.has(host) || host.startsWith("127.");

export type CliResult =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "run"; options: RuntimeOptions; insecure: boolean }
  | { kind: "import"; format: "llama-swap"; file: string; dryRun: boolean; options: RuntimeOptions }
  | { kind: "keys"; command: KeysCommand }
  | WorkerCliResult;

/** `import llama-swap <file> [--dry-run]`: works on the data directory, never starts a server. */
function parseImport(argv: string[], env: Record<string, string | undefined>): CliResult {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        "dry-run": { type: "boolean" },
        config: { type: "string" },
        "data-dir": { type: "string" },
        "log-level": { type: "string" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [format, file, ...rest] = parsed.positionals;
  if (format !== "llama-swap") throw new UsageError(`Unknown import format "${format ?? ""}": the only one is llama-swap`);
  if (!file) throw new UsageError("import llama-swap needs the path of a llama-swap config.yaml");
  if (rest.length) throw new UsageError(`Unexpected argument "${rest[0]}"`);
  const dataDir = resolve(parsed.values["data-dir"] ?? env.DATA_DIR ?? "data");
  return {
    kind: "import",
    format,
    file: resolve(file),
    dryRun: parsed.values["dry-run"] ?? false,
    options: {
      port: 0,
      host: "127.0.0.1",
      dataDir,
      configPath: resolve(parsed.values.config ?? env.CONFIG_PATH ?? `${dataDir}/llama-server-config.json`),
      logLevel: "warn",
      environment: env.NODE_ENV ?? "production",
    },
  };
}

/** Flags win over environment variables, which win over defaults. Bad values throw UsageError. */
export function parseCli(argv: string[], env: Record<string, string | undefined>): CliResult {
  if (argv[0] === "import") return parseImport(argv.slice(1), env);
  if (argv[0] === "keys") {
    try {
      return { kind: "keys", command: parseKeysCommand(argv.slice(1), env) };
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (argv[0] === "worker") return parseWorkerCli(argv.slice(1), env);
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        config: { type: "string" },
        "data-dir": { type: "string" },
        "log-level": { type: "string" },
        "api-key": { type: "string" },
        "api-key-file": { type: "string" },
        "allowed-hosts": { type: "string" },
        "insecure-no-auth": { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };

  const portText = values.port ?? env.PORT ?? "3000";
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) {
    throw new UsageError(`Invalid port "${portText}": must be a whole number between 0 and 65535`);
  }
  const host = (values.host ?? env.HOST ?? "127.0.0.1").trim();
  if (!host || /\s|\//.test(host)) throw new UsageError(`Invalid host "${host}"`);
  const logLevel = (values["log-level"] ?? env.LOG_LEVEL ?? "info").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`Invalid log level "${logLevel}": use one of ${LOG_LEVELS.join(", ")}`);
  }
  const dataDir = resolve(values["data-dir"] ?? env.DATA_DIR ?? "data");
  const configPath = resolve(values.config ?? env.CONFIG_PATH ?? `${dataDir}/llama-server-config.json`);
  const keyFile = values["api-key-file"] ?? env.API_KEY_FILE;
  if (keyFile !== undefined && (values["api-key"] !== undefined || env.API_KEY !== undefined)) {
    throw new UsageError("Give the API key one way: --api-key, API_KEY or --api-key-file");
  }
  const apiKey = keyFile !== undefined ? readKeyFile(keyFile) : (values["api-key"] ?? env.API_KEY ?? undefined);
  if (apiKey !== undefined && /[\s\x00-\x1f]/.test(apiKey)) throw new UsageError("The API key must not contain spaces or control characters");
  const allowedHosts = (values["allowed-hosts"] ?? env.ALLOWED_HOSTS ?? "")
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  for (const h of allowedHosts) {
    if (!splitHostPort(h)) throw new UsageError(`Invalid allowed host "${h}": use a name, an address or name:port`);
  }
  if (apiKey !== undefined && apiKey.length < 8) throw new UsageError("The API key must be at least 8 characters");
  const insecure = values["insecure-no-auth"] ?? false;
  if (!isLoopback(host) && !apiKey && !insecure) {
    throw new UsageError(
      `Refusing to bind to ${host} without an API key: anyone who can reach the API can choose which binary it runs. ` +
        `Set --api-key (or API_KEY), or pass --insecure-no-auth if the network is trusted.`,
    );
  }
  return {
    kind: "run",
    insecure,
    options: {
      port: Number(portText),
      host,
      dataDir,
      configPath,
      logLevel: logLevel as LogLevel,
      environment: env.NODE_ENV ?? "production",
      apiKey: apiKey || undefined,
      allowedHosts,
    },
  };
}
