import { readFileSync } from "node:fs";

/** Resident set size of a process in MB from /proc/<pid>/status (VmRSS), or undefined. */
export function readRssMb(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined; // gone, or not Linux
  }
  return parseVmRssMb(text);
}

export function parseVmRssMb(statusText: string): number | undefined {
  const m = statusText.match(/^VmRSS:\s+(\d+)\s+kB/m);
  return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : undefined;
}

/**
 * GPU memory per pid (MB) from `nvidia-smi --query-compute-apps=pid,process_name,used_memory
 * --format=csv[,noheader][,nounits]` output (see shared/fixtures/nvidia-smi/smi-apps-load.csv).
 */
export function parseComputeApps(csv: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of csv.split("\n")) {
    const cols = line.split(",").map((c) => c.trim());
    const pid = Number(cols[0]);
    if (!cols[0] || !Number.isInteger(pid)) continue; // header or blank
    const mem = parseFloat(cols[cols.length - 1] ?? "");
    if (Number.isFinite(mem)) out.set(pid, (out.get(pid) ?? 0) + mem);
  }
  return out;
}

/**
 * GPU memory per pid, from `nvidia-smi --query-compute-apps` run at most every `maxAgeMs` in
 * the background. Readers get the latest known numbers synchronously (never wait on nvidia-smi,
 * which can take a second on a busy machine). Without nvidia-smi it stays empty.
 */
export class GpuProcessMemory {
  private byPid = new Map<number, number>();
  private fetchedAt = 0;
  private inFlight = false;
  private readonly binary: string | null;

  constructor(
    private readonly maxAgeMs = 5000,
    binary: string | null = Bun.which("nvidia-smi"),
  ) {
    this.binary = binary;
  }

  /** MB of GPU memory `pid` holds as of the last sample (undefined when unknown). */
  of(pid: number): number | undefined {
    this.refreshIfStale();
    return this.byPid.get(pid);
  }

  private refreshIfStale(): void {
    if (!this.binary || this.inFlight || Date.now() - this.fetchedAt < this.maxAgeMs) return;
    this.inFlight = true;
    const proc = Bun.spawn([this.binary, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"], {
      stdout: "pipe",
      stderr: "ignore",
      stdin: "ignore",
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    new Response(proc.stdout)
      .text()
      .then(async (text) => {
        await proc.exited;
        if (proc.exitCode === 0) this.byPid = parseComputeApps(text);
      })
      .catch(() => {})
      .finally(() => {
        clearTimeout(timer);
        this.fetchedAt = Date.now();
        this.inFlight = false;
      });
  }
}
