import { randomToken } from "../crypto";

/**
 * Every llama-server child gets its own random API key, so its port (127.0.0.1:<port>) is useless
 * to anyone but us: llama-server leaves only /health, /v1/health and its web UI's static files
 * public (tools/server/server-http.cpp, get_public_endpoints) and answers everything else 401
 * without the key. Without it, any local process, and any web page (the real server reflects any
 * Origin with credentials), could run inference or read slots behind the proxy's back.
 *
 * The key reaches the child in its environment (LLAMA_API_KEY, which llama-server reads when
 * --api-key is absent), not in argv: argv is world-readable in /proc/<pid>/cmdline and `ps`,
 * the environment only to the same user. It is never logged, never in the pidfile, never in
 * /api/models.
 *
 * Keys are held here by the child's origin (http://127.0.0.1:<port>) because everything that
 * talks to a child (the proxy relay, /upstream, the metrics reader, health checks, KV-cache
 * save/restore) holds the child's URL, not a handle on the supervisor. The supervisor sets a key
 * before it spawns and drops it when the process has exited; ports are never shared by two live
 * children, so origins do not collide.
 */
const keys = new Map<string, string>();

export const CHILD_KEY_ENV = "LLAMA_API_KEY";

export function newChildKey(): string {
  return randomToken(24);
}

const originOf = (url: string) => {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
};

export function registerChildKey(baseUrl: string, key: string): void {
  keys.set(originOf(baseUrl), key);
}

export function forgetChildKey(baseUrl: string, key?: string): void {
  const origin = originOf(baseUrl);
  // A new child on the same port may already have registered its own key: only drop ours.
  if (key === undefined || keys.get(origin) === key) keys.delete(origin);
}

/** `Authorization: Bearer <key>` for a request to one of our children; {} for anything else. */
export function childAuthHeaders(url: string): Record<string, string> {
  const key = keys.get(originOf(url));
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Sets the child's key on outgoing headers (replacing whatever the client sent). */
export function addChildAuth(url: string, headers: Headers): Headers {
  const key = keys.get(originOf(url));
  if (key) headers.set("authorization", `Bearer ${key}`);
  return headers;
}
