import type { Subprocess } from "bun";

/**
 * Reads a child's stderr (or stdout) line by line, keeps everything for assertions, and lets a
 * test wait for a line matching a pattern (the readiness signal) instead of sleeping.
 */
export class LineWatcher {
  text = "";
  private waiters: Array<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      const decoder = new TextDecoder();
      const reader = stream.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.text += decoder.decode(value, { stream: true });
        this.check();
      }
    })();
  }

  private check() {
    this.waiters = this.waiters.filter((w) => {
      const m = this.text.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  wait(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const m = this.text.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in:\n${this.text}`)), timeoutMs);
      this.waiters.push({ re, resolve: (x) => (clearTimeout(timer), resolve(x)) });
    });
  }
}

/** Starts `cmd`, waits for "listening on <url>" and returns the url. */
export async function startListening(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const proc = Bun.spawn(cmd, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdout: "pipe", stderr: "pipe" });
  const err = new LineWatcher(proc.stderr as ReadableStream<Uint8Array>);
  const out = new LineWatcher(proc.stdout as ReadableStream<Uint8Array>);
  const m = await Promise.race([
    out.wait(/listening on (http:\/\/\S+)/),
    proc.exited.then((code) => {
      throw new Error(`exited with ${code} before listening:\n${err.text}${out.text}`);
    }),
  ]);
  return { proc, url: m[1]!, stderr: err, stdout: out };
}

export async function killAndWait(proc: Subprocess, signal: NodeJS.Signals = "SIGKILL") {
  if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
  await proc.exited;
}
