/**
 * What a model with the `rpc` setting adds to llama-server's command line, decided from what the
 * main instance knows about its RPC workers. Pure (no I/O), tested as a table; RpcWorkers gathers
 * the facts (a fresh check of each worker) and supervisor start-up applies the answer.
 */
// node:net is required where it is used, not imported: loading it costs ~1.6 ms of CPU and
// ~1 MB at start-up (compiled probe beside SQLite and Bun.serve), and only RPC needs it.
const isIP = (h: string): number => (require("node:net") as typeof import("node:net")).isIP(h);

export interface WorkerFacts {
  name: string;
  /** The worker API answered. */
  reachable: boolean;
  /** Why not, when it did not. */
  error?: string;
  /** Its rpc-server's state as the worker reports it ("running", "restarting", ...). */
  rpcState?: string;
  /** host:port rpc-server listens on. */
  endpoint?: string;
  /** Bumped by the worker on every rpc-server start. */
  generation?: number;
  /** The worker API's host (where the main instance reaches the worker). */
  urlHost: string;
}

export type RpcLaunch =
  | { ok: true; args: string[]; workers: Array<{ name: string; generation: number }> }
  | { ok: false; reason: string };

const isLoopbackHost = (h: string) => {
  const x = h.replace(/^\[|\]$/g, "").toLowerCase();
  return x === "localhost" || x === "::1" || (isIP(x) === 4 && x.startsWith("127."));
};

/** "host:port" -> [host, port] (IPv6 in brackets). */
function splitEndpoint(endpoint: string): [string, string] | undefined {
  const m = endpoint.match(/^(\[[^\]]+\]|[^:]+):(\d{1,5})$/);
  return m ? [m[1]!, m[2]!] : undefined;
}

export function rpcLaunchArgs(
  settings: { rpc?: string[] | "all"; tensorSplit?: number[] },
  configured: readonly string[],
  facts: ReadonlyMap<string, WorkerFacts>,
): RpcLaunch {
  if (!settings.rpc) return { ok: true, args: [], workers: [] };
  const names = settings.rpc === "all" ? [...configured] : settings.rpc;
  if (names.length === 0) return { ok: false, reason: 'rpc is "all" but no rpcWorkers are configured' };
  const endpoints: string[] = [];
  const used: Array<{ name: string; generation: number }> = [];
  for (const name of names) {
    if (!configured.includes(name)) return { ok: false, reason: `RPC worker ${name} is not configured (rpcWorkers lists: ${configured.join(", ") || "none"})` };
    const f = facts.get(name);
    if (!f || !f.reachable) return { ok: false, reason: `RPC worker ${name} is down: ${f?.error ?? "not checked"}` };
    if (f.rpcState !== "running" || !f.endpoint || f.generation === undefined) return { ok: false, reason: `RPC worker ${name} is up but its rpc-server is ${f.rpcState ?? "not reported"}` };
    const parts = splitEndpoint(f.endpoint);
    if (!parts) return { ok: false, reason: `RPC worker ${name} reported an invalid endpoint "${f.endpoint}"` };
    let [host] = parts;
    // rpc-server on the worker's loopback is reachable only from the worker's own host.
    if (isLoopbackHost(host) && !isLoopbackHost(f.urlHost)) {
      return { ok: false, reason: `RPC worker ${name}'s rpc-server binds ${host}, which only its own host can reach: start the worker with --rpc-host <its private address>` };
    }
    endpoints.push(`${host}:${parts[1]}`);
    used.push({ name, generation: f.generation });
  }
  const args = ["--rpc", endpoints.join(",")];
  if (settings.tensorSplit?.length) args.push("--tensor-split", settings.tensorSplit.join(","));
  return { ok: true, args, workers: used };
}
