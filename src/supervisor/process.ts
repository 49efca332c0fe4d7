import type { Subprocess } from "bun";
import { CHILD_KEY_ENV, childAuthHeaders, forgetChildKey, registerChildKey } from "./child-keys";
import type { LogLevel } from "../logs/types";

export interface ChildExit {
  code: number | null;
  signal: string | null;
}

export type LineSink = (line: string, stream: "stdout" | "stderr") => void;

/**
 * llama-server marks lines with a level letter when log prefixes are on ("0.00.123.456 I main:
 * ...", or " I " / " W " / " E " after a timestamp). Lines without a marker are info, unless
 * they plainly report an error.
 */
export function levelOfLine(line: string): LogLevel {
  const marker = line.match(/^(?:[\d.:]+\s+)?([IWEDT])\s/);
  if (marker) {
    switch (marker[1]) {
      case "E": return "error";
      case "W": return "warn";
      case "D":
      case "T": return "debug";
      default: return "info";
    }
  }
  if (/\b(error|failed|exception|aborted)\b|GGML_ASSERT|exiting due to/i.test(line)) return "error";
  if (/\bwarn(ing)?\b/i.test(line)) return "warn";
  return "info";
}

export class EarlyExitError extends Error {
  constructor(readonly exit: ChildExit) {
    super(`llama-server exited during load (${describeExit(exit)})`);
    this.name = "EarlyExitError";
  }
}

export class LoadDeadlineError extends Error {
  constructor(readonly deadlineMs: number) {
    super(`llama-server did not become healthy within ${Math.round(deadlineMs / 100) / 10} s`);
    this.name = "LoadDeadlineError";
  }
}

export class LoadAbortedError extends Error {
  constructor() {
    super("Load cancelled: the model was stopped while loading");
    this.name = "LoadAbortedError";
  }
}

export function describeExit(exit: ChildExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface SpawnOptions {
  command: string[];
  /** http://host:port the server will answer on. */
  baseUrl: string;
  onLine: LineSink;
  env?: Record<string, string | undefined>;
  /** The child's own API key (see child-keys.ts): passed in its environment, registered for callers. */
  apiKey?: string;
  /** How many recent output lines to keep for error reports. */
  tailSize?: number;
}

/**
 * One llama-server child. Owns the Subprocess, turns its output into lines, knows how to wait
 * for readiness and how to stop it. It makes no state decisions; the supervisor does.
 */
export class LlamaServerProcess {
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  readonly baseUrl: string;
  readonly command: string[];
  /** Resolves once the process has exited and its output has been drained. Never rejects. */
  readonly exited: Promise<ChildExit>;
  private exitInfo: ChildExit | null = null;
  private tail: string[] = [];
  private readonly tailSize: number;
  private listeningSeen = false;
  private wakeUp: (() => void) | null = null;
  /** ISO time of the last /health answer (any status). */
  lastHealthCheck: string | null = null;

  /** Throws (ENOENT, EACCES) when the binary cannot be executed at all. */
  constructor(private readonly opts: SpawnOptions) {
    this.baseUrl = opts.baseUrl;
    this.command = opts.command;
    this.tailSize = opts.tailSize ?? 20;
    const env = { ...(opts.env ?? process.env) };
    if (opts.apiKey) env[CHILD_KEY_ENV] = opts.apiKey;
    else delete env[CHILD_KEY_ENV]; // never hand down a key of our own environment by accident
    this.proc = Bun.spawn(opts.command, {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env,
      // Own session and process group: a Ctrl-C in our terminal does not reach the child
      // directly (we stop it in order), and stop() can signal the whole group.
      detached: true,
    });
    if (opts.apiKey) registerChildKey(opts.baseUrl, opts.apiKey);
    const drained = Promise.all([this.pump(this.proc.stdout, "stdout"), this.pump(this.proc.stderr, "stderr")]);
    this.exited = this.proc.exited.then(async () => {
      this.wakeUp?.();
      // Let the last lines (often the reason for the exit) arrive, but do not hang on a pipe a
      // grandchild might keep open.
      await Promise.race([drained, sleep(250)]);
      const info: ChildExit = { code: this.proc.exitCode, signal: this.proc.signalCode ? String(this.proc.signalCode) : null };
      if (opts.apiKey) forgetChildKey(opts.baseUrl, opts.apiKey);
      this.exitInfo = info;
      this.wakeUp?.();
      return info;
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  get hasExited(): boolean {
    return this.exitInfo !== null;
  }

  get exit(): ChildExit | null {
    return this.exitInfo;
  }

  /** The most recent output lines, oldest first. */
  logTail(): string[] {
    return this.tail.slice();
  }

  private async pump(stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr"): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    const emit = (raw: string) => {
      const line = raw.replace(/\r$/, "");
      if (line.trim() === "") return;
      this.tail.push(line);
      if (this.tail.length > this.tailSize) this.tail.shift();
      if (!this.listeningSeen && /listening on|server is listening/i.test(line)) {
        this.listeningSeen = true;
        this.wakeUp?.();
      }
      this.opts.onLine(line, name);
    };
    const reader = stream.getReader();
    try {
      while (true) {
        const { value: chunk, done } = await reader.read();
        if (done) break;
        pending += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = pending.indexOf("\n")) !== -1) {
          emit(pending.slice(0, nl));
          pending = pending.slice(nl + 1);
        }
      }
      pending += decoder.decode();
      if (pending) emit(pending);
    } catch {
      // The pipe broke because the process died; its exit is reported through `exited`.
    }
  }

  /**
   * One GET /health. True only on llama-server's own 200 answer `{"status":"ok"}`: if our child
   * failed to bind, whatever else listens on the port must not pass for it.
   */
  async checkHealth(timeoutMs = 1000): Promise<boolean> {
    try {
      // /health is public on llama-server, but every request of ours carries the child's key.
      const res = await fetch(`${this.baseUrl}/health`, { headers: childAuthHeaders(this.baseUrl), signal: AbortSignal.timeout(timeoutMs) });
      this.lastHealthCheck = new Date().toISOString();
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => {});
        return false;
      }
      const body = (await res.json().catch(() => null)) as { status?: unknown } | null;
      return body?.status === "ok";
    } catch {
      return false; // not listening yet, or busy
    }
  }

  /** True as soon as the kernel reported the exit (before its output is drained). */
  get processGone(): boolean {
    return this.exitInfo !== null || this.proc.exitCode !== null || this.proc.signalCode != null;
  }

  /**
   * Polls /health every `pollMs` until it answers 200. A "listening on" log line triggers an
   * immediate poll, so readiness is noticed within a few ms of the server reporting it. Rejects
   * with EarlyExitError when the process exits first, LoadDeadlineError after `deadlineMs`, and
   * LoadAbortedError when `signal` aborts.
   */
  async waitReady(deadlineMs: number, signal?: AbortSignal, pollMs = 25): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    const onAbort = () => this.wakeUp?.();
    signal?.addEventListener("abort", onAbort);
    try {
      while (true) {
        if (signal?.aborted) throw new LoadAbortedError();
        if (this.processGone) throw new EarlyExitError(await this.exited);
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new LoadDeadlineError(deadlineMs);
        if (await this.checkHealth(Math.min(1000, Math.max(50, remaining)))) {
          // The process may have died between the answer and now; report what is true.
          if (this.processGone) throw new EarlyExitError(await this.exited);
          if (signal?.aborted) throw new LoadAbortedError();
          return;
        }
        // Sleep until the next poll, or until something worth reacting to happens.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(pollMs, Math.max(0, deadline - Date.now())));
          function done() {
            clearTimeout(timer);
            resolve();
          }
          this.wakeUp = done;
        });
        this.wakeUp = null;
      }
    } finally {
      this.wakeUp = null;
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Sends `signal` to the child's whole process group (falls back to the child alone). */
  signal(sig: NodeJS.Signals): void {
    if (this.exitInfo) return;
    try {
      process.kill(-this.proc.pid, sig);
    } catch {
      try {
        this.proc.kill(sig);
      } catch {
        // already gone
      }
    }
  }

  /**
   * SIGTERM, wait up to `graceMs`, then SIGKILL; always waits for the exit, so when this
   * resolves no process is left behind. Safe to call more than once.
   *
   * A second SIGTERM goes out after min(500 ms, grace/2): llama-server sets /health to 200 and
   * installs its signal handler *before* its main loop starts, and a terminate() that lands in
   * between is lost (tools/server/server.cpp: shutdown_handler -> ctx_server.terminate(), then
   * start_loop()). A stop right after a load then hangs until SIGKILL. Its handler treats a
   * second signal as "terminate immediately" (exit(1)), which is still a clean process exit.
   */
  async stop(graceMs: number): Promise<ChildExit & { killed: boolean }> {
    if (this.exitInfo) return { ...this.exitInfo, killed: false };
    this.signal("SIGTERM");
    const nudgeMs = Math.min(500, graceMs / 2);
    if (!(await this.exitedWithin(nudgeMs))) this.signal("SIGTERM");
    const graceOver = !(await this.exitedWithin(graceMs - nudgeMs));
    if (graceOver) this.signal("SIGKILL");
    const exit = await this.exited;
    return { ...exit, killed: graceOver };
  }

  /** True when the process exits within `ms`. */
  private async exitedWithin(ms: number): Promise<boolean> {
    if (this.exitInfo) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, ms)))),
    ]);
    clearTimeout(timer);
    return exited;
  }
}
