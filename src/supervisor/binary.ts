import { accessSync, constants, statSync } from "node:fs";

export interface BinaryCheck {
  found: boolean;
  /** Absolute path when found. */
  path?: string;
  /** Why it cannot be used, for users ("llama-server not found: ..."). */
  reason?: string;
}

/**
 * Resolves the configured llama-server: an absolute/relative path must be an executable file; a
 * bare name is looked up on PATH. Cached for a second because health checks call it often.
 */
let cache: { key: string; at: number; result: BinaryCheck } | null = null;

export function checkServerBinary(serverPath: string): BinaryCheck {
  const now = Date.now();
  if (cache && cache.key === serverPath && now - cache.at < 1000) return cache.result;
  const result = resolveBinary(serverPath);
  cache = { key: serverPath, at: now, result };
  return result;
}

function resolveBinary(serverPath: string): BinaryCheck {
  if (!serverPath.includes("/")) {
    const found = Bun.which(serverPath);
    return found
      ? { found: true, path: found }
      : { found: false, reason: `llama-server not found: "${serverPath}" is not on PATH. Set serverPath in the configuration.` };
  }
  try {
    const st = statSync(serverPath);
    if (!st.isFile()) return { found: false, reason: `llama-server not found: ${serverPath} is not a file` };
    accessSync(serverPath, constants.X_OK);
    return { found: true, path: serverPath };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      found: false,
      reason:
        code === "EACCES"
          ? `llama-server is not executable: ${serverPath}`
          : `llama-server not found: ${serverPath} does not exist`,
    };
  }
}

/** How long `<serverPath> --version` may take (a real llama-server answers in ~10 ms). */
const VERSION_TIMEOUT_MS = 10_000;
/** Bytes of its output we read. */
const VERSION_OUTPUT_CAP = 64 * 1024;

export type ServerPathVerdict = { ok: true; path: string; version: string } | { ok: false; reason: string };

/**
 * Whoever sets serverPath chooses what we execute, so a new value must be a llama-server: an
 * executable file that answers `--version` the way llama-server does (exit 0 and, on stderr or
 * stdout, "version: <v> (...)" followed by "built with <compiler> for <target>", the two lines
 * common/common.cpp prints). A wrapper script that passes its arguments on answers the same.
 * /bin/sh, python, a GGUF file or a config file do not. The probe runs with no stdin, a
 * timeout, and an output cap, and is killed (its process group) if it outlives the timeout.
 */
export async function verifyLlamaServer(serverPath: string, timeoutMs = VERSION_TIMEOUT_MS): Promise<ServerPathVerdict> {
  const found = resolveBinary(serverPath);
  if (!found.found) return { ok: false, reason: found.reason! };
  let proc;
  try {
    const env = { ...process.env };
    delete env.LLAMA_API_KEY;
    proc = Bun.spawn([found.path!, "--version"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env });
  } catch (err) {
    return { ok: false, reason: `cannot execute ${serverPath}: ${(err as Error).message}` };
  }
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const read = async (stream: ReadableStream<Uint8Array>) => {
    const reader = stream.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (total < VERSION_OUTPUT_CAP) chunks.push(value);
      total += value.byteLength;
    }
    return Buffer.concat(chunks).toString("utf8").slice(0, VERSION_OUTPUT_CAP);
  };
  const [out, err, code] = await Promise.all([read(proc.stdout), read(proc.stderr), proc.exited]);
  clearTimeout(timer);
  if (proc.signalCode === "SIGKILL") return { ok: false, reason: `${serverPath} --version did not answer within ${timeoutMs / 1000} s` };
  const text = `${err}\n${out}`;
  const version = text.match(/^version:\s*(\S.*)$/m)?.[1]?.trim();
  if (code !== 0 || !version || !/^built with .+ for .+$/m.test(text)) {
    return { ok: false, reason: `${serverPath} does not answer --version like llama-server (exit ${code}); point serverPath at llama.cpp's llama-server` };
  }
  return { ok: true, path: found.path!, version };
}

/**
 * The check a configuration change goes through before anything is saved: a serverPath that
 * differs from the one in force must pass verifyLlamaServer. An unchanged one is not re-checked
 * (a fresh install's "llama-server" that is not installed yet must not block saving the rest).
 * Returns the reason to refuse, or null.
 */
export async function serverPathChangeRefusal(current: string, next: string | undefined): Promise<string | null> {
  if (next === undefined || next === current) return null;
  const verdict = await verifyLlamaServer(next);
  return verdict.ok ? null : verdict.reason;
}
