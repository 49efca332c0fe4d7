// node:net is required where it is used, not imported: loading it costs ~1.6 ms of CPU and
// ~1 MB at start-up (compiled probe beside SQLite and Bun.serve), and only RPC needs it.
const isIP = (h: string): number => (require("node:net") as typeof import("node:net")).isIP(h);

/**
 * llama.cpp's rpc-server has no authentication at all: whoever reaches its port can allocate
 * memory and run graphs on the host (and its own README says never to expose it). So the worker
 * lets it bind only to loopback or to a private-network address, never to a wildcard or a public
 * address, unless the operator forces it.
 */
export type BindVerdict = { ok: true } | { ok: false; reason: string };

export function checkRpcBindAddress(host: string): BindVerdict {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost") return { ok: true };
  const family = isIP(h);
  if (family === 0) return { ok: false, reason: `"${host}" is not an IP address (give the exact loopback or private address to bind)` };
  if (h === "0.0.0.0" || h === "::") return { ok: false, reason: `${host} binds every interface, including public ones` };
  if (family === 4) {
    const [a, b] = h.split(".").map(Number) as [number, number];
    if (a === 127) return { ok: true };
    if (a === 10) return { ok: true };
    if (a === 172 && b >= 16 && b <= 31) return { ok: true };
    if (a === 192 && b === 168) return { ok: true };
    if (a === 100 && b >= 64 && b <= 127) return { ok: true }; // carrier-grade NAT / Tailscale
    if (a === 169 && b === 254) return { ok: true }; // link-local
    return { ok: false, reason: `${host} is not a loopback or private address` };
  }
  if (h === "::1") return { ok: true };
  if (/^f[cd][0-9a-f]{2}:/.test(h)) return { ok: true }; // unique local fc00::/7
  if (/^fe[89ab][0-9a-f]:/.test(h)) return { ok: true }; // link-local fe80::/10
  return { ok: false, reason: `${host} is not a loopback or private address` };
}
