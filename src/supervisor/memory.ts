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
