import { existsSync, readFileSync, statfsSync } from "node:fs";
import { cpus, freemem, loadavg, totalmem } from "node:os";
import type { CpuMetrics, DiskMetrics, MemoryMetrics } from "./types";

const round1 = (n: number) => Math.round(n * 10) / 10;

interface CpuTimes { idle: number; total: number }

/** Aggregate CPU times from the first line of /proc/stat (jiffies). */
export function parseProcStat(text: string): CpuTimes | null {
  const line = text.split("\n", 1)[0];
  if (!line?.startsWith("cpu ")) return null;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  return { idle, total };
}

/**
 * CPU usage as the busy share of the time between two readings of /proc/stat. The first call
 * has no previous reading and compares against boot (the since-boot average), never NaN.
 */
export class CpuSampler {
  private prev: CpuTimes | null = null;

  constructor(private readonly read: () => string | null = () => (existsSync("/proc/stat") ? readFileSync("/proc/stat", "utf8") : null)) {}

  sample(): CpuMetrics {
    const text = this.read();
    const now = text ? parseProcStat(text) : null;
    let usage = 0;
    if (now) {
      const base = this.prev ?? { idle: 0, total: 0 };
      const dt = now.total - base.total;
      const di = now.idle - base.idle;
      usage = dt > 0 ? Math.min(100, Math.max(0, ((dt - di) / dt) * 100)) : 0;
      this.prev = now;
    }
    const la = loadavg();
    return { usage: round1(usage), cores: cpus().length || 1, loadAverage: [round1(la[0] ?? 0), round1(la[1] ?? 0), round1(la[2] ?? 0)].map((n) => Math.round(n * 100) / 100) as [number, number, number] };
  }
}

/** Memory in MB. "used" excludes reclaimable cache (MemAvailable), as `free` shows it. */
export function parseMeminfo(text: string): MemoryMetrics | null {
  const kb = (key: string) => {
    const m = text.match(new RegExp(`^${key}:\\s+(\\d+)`, "m"));
    return m ? Number(m[1]) : undefined;
  };
  const total = kb("MemTotal");
  const available = kb("MemAvailable") ?? kb("MemFree");
  if (total === undefined || available === undefined) return null;
  const totalMb = total / 1024;
  const freeMb = available / 1024;
  const usedMb = totalMb - freeMb;
  return { used: Math.round(usedMb), total: Math.round(totalMb), free: Math.round(freeMb), usagePercent: round1((usedMb / totalMb) * 100) };
}

export function readMemory(): MemoryMetrics {
  if (existsSync("/proc/meminfo")) {
    const parsed = parseMeminfo(readFileSync("/proc/meminfo", "utf8"));
    if (parsed) return parsed;
  }
  const total = totalmem() / 1048576;
  const free = freemem() / 1048576;
  return { used: Math.round(total - free), total: Math.round(total), free: Math.round(free), usagePercent: round1(((total - free) / total) * 100) };
}

/** Disk usage (bytes) of the filesystem holding `path`, as `df` computes it (used / (used + avail)). */
export function readDisk(path: string): DiskMetrics {
  try {
    const s = statfsSync(path);
    const total = s.blocks * s.bsize;
    const free = s.bavail * s.bsize;
    const used = (s.blocks - s.bfree) * s.bsize;
    const usagePercent = used + free > 0 ? round1((used / (used + free)) * 100) : 0;
    return { used, total, free, usagePercent };
  } catch {
    return { used: 0, total: 0, free: 0, usagePercent: 0 };
  }
}
