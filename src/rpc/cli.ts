import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { UsageError } from "../cli";
import { APP_NAME, APP_VERSION } from "../version";
import { checkRpcBindAddress } from "./address";
import type { WorkerOptions } from "./worker";

export const WORKER_HELP = `${APP_NAME} ${APP_VERSION} worker
Runs llama.cpp's rpc-server on this host (restarting it when it dies) and reports its health and
devices to a main instance over a small authenticated HTTP API (GET /api/worker).

Usage: llama-async-proxy worker --api-key <key> [options]

rpc-server has NO authentication: anyone who reaches its port can use this host's memory and
devices. It may only bind to loopback or a private address (10/8, 172.16/12, 192.168/16,
100.64/10, fc00::/7); keep that network trusted.

Options:
  --rpc-server <path>   rpc-server binary (env LLAMA_RPC_SERVER_BIN, default rpc-server on PATH)
  --rpc-host <addr>     Address rpc-server binds (default 127.0.0.1; loopback or private only)
  --rpc-port <n>        Port rpc-server binds (default 50052)
  --device <a,b>        Devices to expose (rpc-server -d), e.g. CUDA0,CUDA1 (default: all accelerators, else CPU)
  --threads <n>         CPU threads of rpc-server (-t)
  --cache               Keep a local file cache of tensors (rpc-server -c): a model's weights are
                        sent over the network once, not on every load
  --allow-public-rpc    Let rpc-server bind a public or wildcard address anyway (dangerous)
  --port <n>            Port of the worker API (env PORT, default 3100; 0 = any free port)
  --host <addr>         Address of the worker API (env HOST, default 127.0.0.1)
  --api-key <key>       Required: the main instance's rpcWorkers entry sends it (env API_KEY)
  --api-key-file <f>    Read the key from this file (env API_KEY_FILE)
  -h, --help            Show this help
`;

export type WorkerCliResult = { kind: "worker-help" } | { kind: "worker"; options: WorkerOptions };

const num = (label: string, text: string, min: number, max: number) => {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`Invalid ${label} "${text}": must be a whole number between ${min} and ${max}`);
  return Number(text);
};

/** `llama-async-proxy worker ...`. Flags win over environment variables. Bad values throw UsageError. */
export function parseWorkerCli(argv: string[], env: Record<string, string | undefined>): WorkerCliResult {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        "rpc-server": { type: "string" },
        "rpc-host": { type: "string" },
        "rpc-port": { type: "string" },
        device: { type: "string" },
        threads: { type: "string" },
        cache: { type: "boolean" },
        "allow-public-rpc": { type: "boolean" },
        port: { type: "string" },
        host: { type: "string" },
        "api-key": { type: "string" },
        "api-key-file": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { kind: "worker-help" };
  const keyFile = values["api-key-file"] ?? env.API_KEY_FILE;
  let apiKey = values["api-key"] ?? env.API_KEY;
  if (!apiKey && keyFile) {
    try {
      apiKey = readFileSync(keyFile, "utf8").split(/\r?\n/)[0]!.trim();
    } catch (err) {
      throw new UsageError(`Cannot read the API key file ${keyFile}: ${(err as Error).message}`);
    }
  }
  if (!apiKey) throw new UsageError("worker needs --api-key (or API_KEY): its API tells where an unauthenticated rpc-server listens");
  if (apiKey.length < 8) throw new UsageError("The API key must be at least 8 characters");
  const rpcHost = (values["rpc-host"] ?? "127.0.0.1").trim();
  const verdict = checkRpcBindAddress(rpcHost);
  if (!verdict.ok && !values["allow-public-rpc"]) {
    throw new UsageError(`Refusing to let rpc-server bind ${rpcHost}: ${verdict.reason}. rpc-server has no authentication; bind loopback or a private address (or pass --allow-public-rpc on a network you trust completely)`);
  }
  const devices = values.device?.split(",").map((d) => d.trim()).filter(Boolean);
  if (devices?.some((d) => !/^[A-Za-z0-9_.-]{1,64}$/.test(d))) throw new UsageError(`Invalid --device "${values.device}": comma-separated device names such as CUDA0,CUDA1`);
  const host = (values.host ?? env.HOST ?? "127.0.0.1").trim();
  if (!host || /\s|\//.test(host)) throw new UsageError(`Invalid host "${host}"`);
  return {
    kind: "worker",
    options: {
      port: num("port", values.port ?? env.PORT ?? "3100", 0, 65535),
      host,
      apiKey,
      rpc: {
        binary: values["rpc-server"] ?? env.LLAMA_RPC_SERVER_BIN ?? Bun.which("rpc-server") ?? "rpc-server",
        host: rpcHost,
        port: num("rpc port", values["rpc-port"] ?? "50052", 1, 65535),
        ...(devices?.length ? { devices } : {}),
        ...(values.threads ? { threads: num("threads", values.threads, 1, 1024) } : {}),
        ...(values.cache ? { cache: true } : {}),
      },
    },
  };
}
