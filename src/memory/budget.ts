/**
 * What each device can give our models: a GPU's memory minus what other processes use on it,
 * host RAM available (MemAvailable) plus what our own models already hold, each minus the margin
 * (memoryMarginMiB) and capped by memoryLimitMiB. Pure: the readings come in as arguments, so
 * the planner's input can be built in tests from the nvidia-smi fixtures.
 */
import { readFileSync } from "node:fs";
import type { GpuReading } from "../metrics/gpu";
import type { DeviceBudget } from "../supervisor/planner";

const MiB = 1024 * 1024;

export interface BudgetInput {
  /** The latest nvidia-smi reading, null without GPUs. */
  gpu: GpuReading | null;
  /** Pids of our llama-server children: their GPU memory is ours, not "other processes". */
  ownPids: ReadonlySet<number>;
  /** /proc/meminfo MemAvailable (bytes), undefined when unknown. */
  memAvailableBytes: number | undefined;
  /** Host bytes our running models hold now (they are not in MemAvailable any more). */
  ownHostBytes: number;
  marginMiB: number;
  /** 0 = no cap; else the most we use on any one device. */
  limitMiB: number;
}

export function deviceBudgets(b: BudgetInput): DeviceBudget[] {
  const margin = b.marginMiB * MiB;
  const cap = (bytes: number) => Math.max(0, b.limitMiB > 0 ? Math.min(bytes, b.limitMiB * MiB) : bytes);
  const out: DeviceBudget[] = [];
  const hostRaw = b.memAvailableBytes === undefined ? (b.limitMiB > 0 ? b.limitMiB * MiB + margin : Number.MAX_SAFE_INTEGER) : b.memAvailableBytes + b.ownHostBytes;
  out.push({ id: "host", kind: "host", capacityBytes: cap(hostRaw - margin) });
  for (const g of b.gpu?.gpus ?? []) {
    const ours = (b.gpu?.processes ?? []).filter((p) => p.gpuId === g.id && b.ownPids.has(p.pid)).reduce((n, p) => n + p.usedMemory, 0);
    const others = Math.max(0, g.memory.used - ours);
    out.push({ id: `gpu${g.id}`, kind: "gpu", index: g.id, capacityBytes: cap((g.memory.total - others) * MiB - margin) });
  }
  return out;
}

/** MemAvailable from /proc/meminfo in bytes (undefined off Linux). */
export function readMemAvailable(text?: string): number | undefined {
  try {
    const m = (text ?? readFileSync("/proc/meminfo", "utf8")).match(/^MemAvailable:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
