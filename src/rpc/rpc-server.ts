import type { Subprocess } from "bun";

/** How the worker runs llama.cpp's rpc-server. */
export interface RpcServerOptions {
  /** rpc-server binary. */
  binary: string;
  /** Address rpc-server binds (-H): loopback or private, checked by the caller. */
  host: string;
  /** Port rpc-server binds (-p). */
  port: number;
  /** Devices to expose (-d), e.g. ["CUDA0", "CUDA1"]; default: every accelerator, else the CPU. */
  devices?: string[];
  /** CPU threads (-t). */
  threads?: number;
  /** Local file cache of tensors (-c), so a model's weights are not sent over the network again. */
  cache?: boolean;
  /** Restart back-off: first delay, doubling up to maxDelayMs. */
  restartDelayMs?: number;
  restartMaxDelayMs?: number;
  /** How long a start may take before rpc-server counts as failed (its port must accept). */
  readyTimeoutMs?: number;
  onLine?: (line: string) => void;
  /** Extra environment of rpc-server (e.g. CUDA_VISIBLE_DEVICES). */
  env?: Record<string, string>;
}

export interface RpcDevice {
  name: string;
  description: string;
  totalMiB: number;
  freeMiB: number;
}

export type RpcServerState = "starting" | "running" | "restarting" | "stopped";

/** What the worker API reports. */
export interface RpcServerStatus {
  state: RpcServerState;
  /** host:port that llama-server's --rpc needs. */
  endpoint: string;
  pid?: number;
  /** Bumped on every start: a changed generation means the tensors a client loaded are gone. */
  generation: number;
  startedAt?: string;
  restarts: number;
  devices: RpcDevice[];
  lastExit?: { code: number | null; signal: string | null; at: string; logTail: string[] };
  nextRestartAt?: string;
  /**
   * A client (a llama-server) holds rpc-server's one connection right now: rpc-server serves one
   * client at a time, so a second model over this worker waits until the first disconnects.
   */
  clientConnected: boolean;
  /** Connections rpc-server has accepted since it started (our own readiness probe included). */
  clientsAccepted: number;
}

/** "  CUDA0: NVIDIA GeForce RTX 5090 (32109 MiB, 31588 MiB free)" (ggml-rpc.cpp's start banner). */
const DEVICE_RE = /^\s+([^\s:]+): (.*) \((\d+) MiB, (\d+) MiB free\)\s*$/;

export function parseDeviceLine(line: string): RpcDevice | undefined {
  const m = line.match(DEVICE_RE);
  return m ? { name: m[1]!, description: m[2]!, totalMiB: Number(m[3]), freeMiB: Number(m[4]) } : undefined;
}

/** Resolves once something accepts a TCP connection on host:port (then closes it), or rejects. */
function tcpProbe(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // node:net is required here, not imported: loading it costs ~1.6 ms of CPU and ~1 MB at
    // start-up (compiled probe beside SQLite and Bun.serve), and only this probe needs it.
    const { connect } = require("node:net") as typeof import("node:net");
    const sock = connect({ host: host.replace(/^\[|\]$/g, ""), port, timeout: timeoutMs });
    sock.once("connect", () => {
      sock.destroy();
      resolve();
    });
    sock.once("timeout", () => {
      sock.destroy();
      reject(new Error("timeout"));
    });
    sock.once("error", (err) => {
      sock.destroy();
      reject(err);
    });
  });
}

/**
 * Supervises one rpc-server: starts it, notices when it dies, starts it again after a back-off
 * (doubling, reset after a minute of uptime), stops it on request.
 *
 * Liveness is the child process itself (we are its parent and see its exit), not a periodic TCP
 * probe: rpc-server serves one client at a time, so while llama-server holds its connection a
 * probe would only wait in the listen backlog. The TCP probe is used once per start, to know when
 * the port accepts; being accepted also makes rpc-server flush its stdout (it fflush()es only
 * after "Accepted client connection"), which is where the device list is printed.
 */
export class RpcServerSupervisor {
  private proc?: Subprocess;
  private state: RpcServerState = "stopped";
  private generation = 0;
  private restarts = 0;
  private startedAt?: string;
  private devices: RpcDevice[] = [];
  private lastExit?: RpcServerStatus["lastExit"];
  private tail: string[] = [];
  private timer?: ReturnType<typeof setTimeout>;
  private nextRestartAt?: number;
  private stopping = false;
  private readyWaiters: Array<() => void> = [];
  private clientConnected = false;
  private clientsAccepted = 0;

  constructor(private readonly o: RpcServerOptions) {}

  get endpoint(): string {
    return `${this.o.host.includes(":") && !this.o.host.startsWith("[") ? `[${this.o.host}]` : this.o.host}:${this.o.port}`;
  }

  argv(): string[] {
    const args = [this.o.binary, "-H", this.o.host.replace(/^\[|\]$/g, ""), "-p", String(this.o.port)];
    if (this.o.devices?.length) args.push("-d", this.o.devices.join(","));
    if (this.o.threads) args.push("-t", String(this.o.threads));
    if (this.o.cache) args.push("-c");
    return args;
  }

  status(): RpcServerStatus {
    return {
      state: this.state,
      endpoint: this.endpoint,
      ...(this.proc && this.state !== "stopped" ? { pid: this.proc.pid } : {}),
      generation: this.generation,
      ...(this.startedAt && this.state === "running" ? { startedAt: this.startedAt } : {}),
      restarts: this.restarts,
      devices: this.devices,
      ...(this.lastExit ? { lastExit: this.lastExit } : {}),
      ...(this.nextRestartAt ? { nextRestartAt: new Date(this.nextRestartAt).toISOString() } : {}),
      clientConnected: this.clientConnected,
      clientsAccepted: this.clientsAccepted,
    };
  }

  /** Starts rpc-server (restarting it whenever it dies) and resolves once its port accepts. */
  start(): Promise<void> {
    this.stopping = false;
    const ready = new Promise<void>((resolve) => this.readyWaiters.push(resolve));
    if (!this.proc) this.spawn();
    return ready;
  }

  /** Resolves the next time rpc-server is running (at once when it is). */
  whenRunning(): Promise<void> {
    if (this.state === "running") return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private spawn(): void {
    this.nextRestartAt = undefined;
    this.state = "starting";
    this.generation++;
    this.devices = [];
    this.clientConnected = false;
    this.clientsAccepted = 0;
    const generation = this.generation;
    let proc: Subprocess<"ignore", "pipe", "pipe">;
    try {
      proc = Bun.spawn(this.argv(), { stdin: "ignore", stdout: "pipe", stderr: "pipe", ...(this.o.env ? { env: { ...process.env, ...this.o.env } } : {}) });
    } catch (err) {
      this.onExit(undefined, { code: null, signal: null }, `cannot execute ${this.o.binary}: ${(err as Error).message}`);
      return;
    }
    this.proc = proc;
    void this.readLines(proc.stdout, true);
    void this.readLines(proc.stderr, false);
    void proc.exited.then(() => this.onExit(proc, { code: proc.exitCode, signal: proc.signalCode ? String(proc.signalCode) : null }));
    void this.waitReady(proc, generation);
  }

  private async waitReady(proc: Subprocess, generation: number): Promise<void> {
    const deadline = Date.now() + (this.o.readyTimeoutMs ?? 30_000);
    while (this.proc === proc && generation === this.generation && Date.now() < deadline) {
      try {
        await tcpProbe(this.o.host, this.o.port, 1000);
        if (this.proc !== proc) return;
        this.state = "running";
        this.startedAt = new Date().toISOString();
        for (const w of this.readyWaiters.splice(0)) w();
        return;
      } catch {
        if (proc.exitCode !== null || proc.signalCode) return; // onExit handles it
        await Bun.sleep(50);
      }
    }
    // Never accepted: kill it, the exit path restarts it.
    if (this.proc === proc) {
      this.o.onLine?.(`rpc-server did not accept connections on ${this.endpoint} in time; killing it`);
      proc.kill("SIGKILL");
    }
  }

  private async readLines(stream: ReadableStream<Uint8Array>, stdout: boolean): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    const reader = stream.getReader();
    try {
      for (;;) {
        const { value: chunk, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, "");
          buf = buf.slice(nl + 1);
          this.line(line, stdout);
        }
        if (buf.length > 64 * 1024) buf = buf.slice(-64 * 1024); // a runaway line is cut, not hoarded
      }
    } catch {
      // the pipe closed with the process
    }
    if (buf) this.line(buf, stdout);
  }

  private line(line: string, stdout: boolean): void {
    this.tail.push(line);
    if (this.tail.length > 50) this.tail.shift();
    if (stdout) {
      const dev = parseDeviceLine(line);
      if (dev && this.devices.length < 64) this.devices = [...this.devices, dev];
      // ggml-rpc.cpp prints (and flushes) these around each client it serves.
      else if (line === "Accepted client connection") {
        this.clientConnected = true;
        this.clientsAccepted++;
      } else if (line === "Client connection closed") this.clientConnected = false;
    }
    this.o.onLine?.(line);
  }

  private onExit(proc: Subprocess | undefined, exit: { code: number | null; signal: string | null }, why?: string): void {
    if (proc && this.proc !== proc) return;
    this.proc = undefined;
    const upMs = this.startedAt && this.state === "running" ? Date.now() - Date.parse(this.startedAt) : 0;
    this.lastExit = { ...exit, at: new Date().toISOString(), logTail: why ? [...this.tail.slice(-19), why] : this.tail.slice(-20) };
    this.startedAt = undefined;
    if (this.stopping) {
      this.state = "stopped";
      return;
    }
    if (upMs > 60_000) this.restarts = 0;
    const base = this.o.restartDelayMs ?? 500;
    const delay = Math.min(this.o.restartMaxDelayMs ?? 30_000, base * 2 ** Math.min(this.restarts, 20));
    this.restarts++;
    this.state = "restarting";
    this.nextRestartAt = Date.now() + delay;
    this.o.onLine?.(`rpc-server exited (${exit.signal ?? `code ${exit.code}`}); restarting in ${delay} ms`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopping) this.spawn();
    }, delay);
  }

  /** Stops rpc-server for good: SIGTERM, then SIGKILL after the grace period. */
  async stop(graceMs = 3000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.nextRestartAt = undefined;
    const proc = this.proc;
    if (!proc) {
      this.state = "stopped";
      return;
    }
    proc.kill("SIGTERM");
    const killer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
    await proc.exited;
    clearTimeout(killer);
    this.state = "stopped";
  }
}
