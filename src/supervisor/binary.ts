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
