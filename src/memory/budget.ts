/**
 * What each device can give our models: a GPU's memory minus what other processes use on it,
 * host RAM available (MemAvailable) plus what our own models already hold, each minus the margin
 * (memoryMarginMiB) and capped by memoryLimitMiB. Pure: the readings come in as arguments, so
 * the planner's input can be built in tests from the nvidia-smi fixtures.
 */
import { readFileSync } from "node:fs";
import type { GpuReading } from "../metrics/gpu";
import type { DeviceBudget, RpcTarget } from "../supervisor/planner";

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

/** What the main instance knows of one RPC worker (RpcWorkers' snapshot, the fields used here). */
export interface RemoteWorkerReport {
  name: string;
  state: "unknown" | "up" | "down";
  /** Its rpc-server's state as the worker reports it. */
  rpcState?: string;
  /** rpc-server's devices, from its start banner ("CUDA0: ... (32109 MiB, 31588 MiB free)"). */
  devices: { name: string; totalMiB: number; freeMiB: number }[];
  lastError?: { message: string };
}

const usable = (w: RemoteWorkerReport) => w.state === "up" && w.rpcState === "running" && w.devices.length > 0;
export const remoteDeviceId = (worker: string, device: string) => `rpc:${worker}/${device}`;

/**
 * The devices of the RPC workers that are up and reported them: what rpc-server said was free
 * when it started, minus the margin, capped by memoryLimitMiB (the same rules as a local GPU).
 * Models running over a worker are subtracted by the planner from their placements, as on a GPU.
 */
export function remoteBudgets(workers: readonly RemoteWorkerReport[], marginMiB: number, limitMiB: number): DeviceBudget[] {
  const cap = (bytes: number) => Math.max(0, limitMiB > 0 ? Math.min(bytes, limitMiB * MiB) : bytes);
  return workers.filter(usable).flatMap((w) =>
    w.devices.map((d) => ({ id: remoteDeviceId(w.name, d.name), kind: "rpc" as const, worker: w.name, name: d.name, capacityBytes: cap(d.freeMiB * MiB - marginMiB * MiB) })),
  );
}

/**
 * The planner's view of a model's `rpc` setting: its remote devices in llama-server's order (the
 * --rpc list's order, each worker's devices as reported) and, for each worker that adds nothing,
 * why. Undefined for a model without `rpc`.
 */
export function rpcTargetOf(rpc: readonly string[] | "all" | undefined, tensorSplit: readonly number[] | undefined, workers: readonly RemoteWorkerReport[]): RpcTarget | undefined {
  if (!rpc) return undefined;
  const names = rpc === "all" ? workers.map((w) => w.name) : rpc;
  const devices: string[] = [];
  const unavailable: RpcTarget["unavailable"] = [];
  for (const name of names) {
    const w = workers.find((x) => x.name === name);
    const reason = !w
      ? "not configured in rpcWorkers"
      : w.state === "unknown"
        ? "not checked yet"
        : w.state === "down"
          ? `down (${w.lastError?.message ?? "unreachable"})`
          : w.rpcState !== "running"
            ? `its rpc-server is ${w.rpcState ?? "not reported"}`
            : w.devices.length === 0
              ? "its devices are not known (the worker reported none)"
              : undefined;
    if (reason) unavailable.push({ worker: name, reason });
    else devices.push(...w!.devices.map((d) => remoteDeviceId(name, d.name)));
  }
  return { devices, unavailable, workers: [...names], ...(tensorSplit?.length ? { tensorSplit: [...tensorSplit] } : {}) };
}
