/**
 * The scheduling decision, as a pure function: devices, the models that occupy memory, their
 * usage, and the model to start go in; what to do comes out (start it here, stop these first,
 * drain that one, wait, or refuse and why). No I/O, no clock, no logging: ModelPool (pool.ts)
 * gathers the input, applies the decision, and asks again until it gets "start" or "refuse".
 * The same shape as llama-swap's EvictionFor ("pure decision; must not log"), extended from
 * counting models to placing bytes on devices.
 *
 * Accounting: a device's capacity is what we may use on it in all (its memory minus what other
 * processes use minus the margin, capped by memoryLimitMiB; see src/memory/budget.ts). What our
 * own models occupy is their planned (or measured) bytes per device, not what nvidia-smi shows at
 * this instant: a model that is still loading has not allocated yet but will.
 */

export interface DeviceBudget {
  /** "gpu0", "gpu1"... (nvidia-smi index), "host", or "rpc:<worker>/<device>" for a remote device. */
  id: string;
  /**
   * "rpc": a device of an RPC worker's rpc-server (remoteBudgets in src/memory/budget.ts). Only a
   * model started with --rpc over that worker can use it; it is listed for every plan anyway so
   * that what running models hold there is counted.
   */
  kind: "gpu" | "host" | "rpc";
  /** nvidia-smi index (CUDA_VISIBLE_DEVICES value) of a GPU. */
  index?: number;
  /** A remote device's worker (its rpcWorkers name) and its name there ("CUDA0", "CPU"). */
  worker?: string;
  name?: string;
  /** Bytes we may use on the device in all, for every model together. */
  capacityBytes: number;
}

/** Where a model runs: bytes per device, and the GPUs in the order llama-server sees them. */
export interface Placement {
  devices: { id: string; bytes: number }[];
  /** nvidia-smi indexes, main GPU first (CUDA_VISIBLE_DEVICES). Empty = host only. */
  gpus: number[];
  /** --tensor-split proportions when the model is split over several GPUs. */
  tensorSplit?: number[];
  /** Started with llama-server's own --fit (some layers may run on the CPU): allowPartialOffload. */
  partial?: boolean;
  /**
   * Started with --rpc: the RPC workers in its --rpc list (llama-server connects to each, even one
   * its split gives no layer). rpc-server serves one client at a time, so no other model can use
   * them while it runs.
   */
  workers?: string[];
}

/**
 * A model started with --rpc (its `rpc` setting): the remote devices llama-server will see beside
 * the local GPUs, and the workers that add nothing.
 */
export interface RpcTarget {
  /**
   * Ids of its remote devices (kind "rpc" in PlanInput.devices) in llama-server's order: the
   * --rpc list's order, each worker's devices as the worker reports them.
   */
  devices: string[];
  /**
   * The model's tensorSplit setting, in llama-server's device order (remote devices first, then
   * the local GPUs); absent: llama.cpp's default, proportional to each device's free memory.
   */
  tensorSplit?: number[];
  /** Workers of the model that contribute nothing, and why (down, devices not reported...). */
  unavailable: { worker: string; reason: string }[];
  /**
   * Every worker of its --rpc list (contributing or not): llama-server connects to each, and
   * rpc-server serves one client at a time. Absent: those whose devices are listed.
   */
  workers?: string[];
}

/** What the model to start needs (estimate.ts, or the measured figure scaled onto it). */
export interface ModelNeed {
  /** Bytes on GPUs when offloaded (0 with -ngl 0 or without GPUs) and on the host. */
  gpuBytes: number;
  hostBytes: number;
  /** Weights + KV per offloaded layer: the unit a split over GPUs moves. */
  gpuLayerBytes: number[];
}

export type OccupantState = "running" | "loading" | "stopping" | "restarting";

/** A model that holds (or is about to hold) memory. */
export interface Occupant {
  id: string;
  state: OccupantState;
  inFlight: number;
  queued: number;
  /** Monotonic time of the last use (LRU). */
  lastUsed: number;
  pinned: boolean;
  /** New requests wait (it was chosen to make room while busy). */
  draining: boolean;
  placement: Placement;
}

export interface PlanInput {
  devices: DeviceBudget[];
  occupants: Occupant[];
  target: { id: string; need: ModelNeed; allowPartialOffload: boolean; rpc?: RpcTarget };
  /** Extra cap on models at once; 0 = memory only. */
  maxLoadedModels: number;
}

export type Decision =
  | { action: "start"; placement: Placement }
  | { action: "stop"; models: string[]; reason: string }
  | { action: "drain"; models: string[]; reason: string }
  | { action: "wait"; reason: string }
  | { action: "refuse"; reason: string; needBytes: number; freeBytes: number };

const MiB = 1024 * 1024;
const mib = (b: number) => `${Math.ceil(b / MiB)} MiB`;

/** Free bytes per device once `occupants` hold their placements. */
export function freeBytes(devices: DeviceBudget[], occupants: readonly Occupant[]): Map<string, number> {
  const free = new Map(devices.map((d) => [d.id, d.capacityBytes]));
  for (const o of occupants) for (const d of o.placement.devices) if (free.has(d.id)) free.set(d.id, free.get(d.id)! - d.bytes);
  return free;
}

/**
 * Where the target fits given free bytes per device, or undefined. One GPU when one has room
 * (the one with the most), else a split over the GPUs with the most room, layer by layer; the
 * fixed part (output layer, compute buffer, projector) goes to the main (first) GPU.
 */
export function place(devices: DeviceBudget[], free: Map<string, number>, need: ModelNeed): Placement | undefined {
  const hostFree = free.get("host") ?? 0;
  const gpus = devices.filter((d) => d.kind === "gpu").sort((a, b) => (free.get(b.id) ?? 0) - (free.get(a.id) ?? 0) || (a.index ?? 0) - (b.index ?? 0));
  const hostOnly = need.gpuBytes === 0 || gpus.length === 0;
  if (hostOnly) {
    const bytes = need.hostBytes + (gpus.length === 0 ? need.gpuBytes : 0);
    return bytes <= hostFree ? { devices: [{ id: "host", bytes }], gpus: [] } : undefined;
  }
  if (need.hostBytes > hostFree) return undefined;
  const host = { id: "host", bytes: need.hostBytes };
  const best = gpus[0]!;
  if (need.gpuBytes <= (free.get(best.id) ?? 0)) {
    return { devices: [{ id: best.id, bytes: need.gpuBytes }, host], gpus: [best.index ?? 0] };
  }
  // Split: fill the roomiest GPUs first, whole layers at a time.
  const layersTotal = need.gpuLayerBytes.reduce((a, b) => a + b, 0);
  const fixed = need.gpuBytes - layersTotal;
  const assigned: { dev: DeviceBudget; bytes: number; layers: number }[] = [];
  let li = 0;
  for (const [i, dev] of gpus.entries()) {
    let room = (free.get(dev.id) ?? 0) - (i === 0 ? fixed : 0);
    if (room <= 0) continue;
    const a = { dev, bytes: i === 0 ? fixed : 0, layers: 0 };
    while (li < need.gpuLayerBytes.length && need.gpuLayerBytes[li]! <= room) {
      room -= need.gpuLayerBytes[li]!;
      a.bytes += need.gpuLayerBytes[li]!;
      a.layers++;
      li++;
    }
    if (a.layers > 0 || i === 0) assigned.push(a);
    if (li === need.gpuLayerBytes.length) break;
  }
  if (li < need.gpuLayerBytes.length || assigned.length < 2 || assigned[0]!.dev !== best) return undefined;
  return {
    devices: [...assigned.map((a) => ({ id: a.dev.id, bytes: a.bytes })), host],
    gpus: assigned.map((a) => a.dev.index ?? 0),
    tensorSplit: assigned.map((a) => a.layers),
  };
}

/** A placement for allowPartialOffload: the roomiest GPU takes what fits, the host the rest. */
function placePartial(devices: DeviceBudget[], free: Map<string, number>, need: ModelNeed): Placement | undefined {
  const gpu = devices.filter((d) => d.kind === "gpu").sort((a, b) => (free.get(b.id) ?? 0) - (free.get(a.id) ?? 0))[0];
  if (!gpu) return undefined;
  const onGpu = Math.max(0, Math.min(need.gpuBytes, free.get(gpu.id) ?? 0));
  const onHost = need.hostBytes + need.gpuBytes - onGpu;
  if (onHost > (free.get("host") ?? 0)) return undefined;
  return { devices: [{ id: gpu.id, bytes: onGpu }, { id: "host", bytes: onHost }], gpus: [gpu.index ?? 0], partial: true };
}

/**
 * How llama-server started with --rpc spreads a model, replayed (src/llama.cpp device selection,
 * src/llama-model.cpp load_tensors): its devices are the remote ones first ("to minimize network
 * transfers"), then the local GPUs; the offloaded layers and the output layer go to devices by
 * cumulative split points (std::upper_bound of layer/(n_offloaded+1)), the split being the
 * tensorSplit setting or, without one, each device's free memory. We do not choose where layers
 * go (a --tensor-split of our own would override the user's); we predict it and check that every
 * device has room. The fixed part (output layer, compute buffer, projector) is counted on the
 * device that takes the output layer. Returns the bytes per device in that order.
 */
export function splitOverRpc(devices: DeviceBudget[], free: Map<string, number>, need: ModelNeed, rpc: RpcTarget): { order: DeviceBudget[]; bytes: number[] } | undefined {
  const byId = new Map(devices.map((d) => [d.id, d]));
  const remote = rpc.devices.map((id) => byId.get(id)).filter((d): d is DeviceBudget => d?.kind === "rpc");
  const local = devices.filter((d) => d.kind === "gpu").sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
  const order = [...remote, ...local];
  if (order.length === 0) return undefined;
  const given = rpc.tensorSplit?.some((x) => x > 0) ? order.map((_, i) => Math.max(0, rpc.tensorSplit![i] ?? 0)) : undefined;
  const weights = given ?? order.map((d) => Math.max(0, free.get(d.id) ?? 0));
  const total = weights.reduce((a, b) => a + b, 0);
  if (total <= 0) return undefined;
  let acc = 0;
  const points = weights.map((w) => (acc += w) / total);
  const deviceAt = (x: number) => {
    const i = points.findIndex((p) => p > x);
    return i < 0 ? order.length - 1 : i;
  };
  const bytes = order.map(() => 0);
  const layers = need.gpuLayerBytes;
  const positions = layers.length + 1; // the output layer is the last position
  layers.forEach((b, k) => (bytes[deviceAt(k / positions)]! += b));
  const fixed = Math.max(0, need.gpuBytes - layers.reduce((a, b) => a + b, 0));
  bytes[deviceAt(layers.length / positions)]! += fixed;
  return { order, bytes };
}

/** Where a model started with --rpc lands (splitOverRpc), or undefined when a device lacks room. */
export function placeOverRpc(devices: DeviceBudget[], free: Map<string, number>, need: ModelNeed, rpc: RpcTarget): Placement | undefined {
  const hostFree = free.get("host") ?? 0;
  const localGpus = devices.filter((d) => d.kind === "gpu").sort((a, b) => (a.index ?? 0) - (b.index ?? 0)).map((d) => d.index ?? 0);
  const split = need.gpuBytes > 0 ? splitOverRpc(devices, free, need, rpc) : undefined;
  if (!split) {
    // Nothing offloaded (-ngl 0) or nowhere to offload to: all of it on the host.
    // It still connects to every worker of its --rpc list, so it still holds them.
    const bytes = need.hostBytes + need.gpuBytes;
    return bytes <= hostFree ? { devices: [{ id: "host", bytes }], gpus: localGpus, workers: targetWorkers(devices, rpc) } : undefined;
  }
  if (need.hostBytes > hostFree) return undefined;
  if (split.bytes.some((b, i) => b > (free.get(split.order[i]!.id) ?? 0))) return undefined;
  const used = split.order.map((d, i) => ({ d, bytes: split.bytes[i]! })).filter((u) => u.bytes > 0);
  const workers = targetWorkers(devices, rpc);
  return {
    devices: [...used.map((u) => ({ id: u.d.id, bytes: u.bytes })), { id: "host", bytes: need.hostBytes }],
    // Every local GPU stays visible: the split (and llama-server's device order) counts them all.
    gpus: localGpus,
    workers,
  };
}

/** The workers an RPC target connects to, in --rpc order. */
function targetWorkers(devices: readonly DeviceBudget[], rpc: RpcTarget | undefined): string[] {
  if (!rpc) return [];
  if (rpc.workers) return rpc.workers;
  const byId = new Map(devices.map((d) => [d.id, d]));
  return [...new Set(rpc.devices.flatMap((id) => (byId.get(id)?.worker ? [byId.get(id)!.worker!] : [])))];
}

/** Where the target fits now: over its RPC devices when started with --rpc, else locally. */
function placeTarget(devices: DeviceBudget[], free: Map<string, number>, target: PlanInput["target"]): Placement | undefined {
  return target.rpc ? placeOverRpc(devices, free, target.need, target.rpc) : place(devices, free, target.need);
}

/**
 * What a placement uses, for people: "worker-a + local GPU 0", "worker-a (CUDA0, CUDA1) + w2",
 * "local CPU". The host is named only when nothing else holds the model.
 */
export function placementLabel(p: Placement, devices: readonly DeviceBudget[]): string {
  const byId = new Map(devices.map((d) => [d.id, d]));
  const remote = new Map<string, string[]>();
  const parts: string[] = [];
  for (const u of p.devices) {
    if (u.bytes <= 0 || u.id === "host") continue;
    const d = byId.get(u.id);
    if (d?.kind === "rpc" && d.worker) {
      if (!remote.has(d.worker)) {
        remote.set(d.worker, []);
        parts.push(`rpc:${d.worker}`);
      }
      remote.get(d.worker)!.push(d.name ?? d.id);
    } else parts.push(`local GPU ${d?.index ?? u.id}`);
  }
  const named = parts.map((x) => {
    if (!x.startsWith("rpc:")) return x;
    const w = x.slice(4);
    const names = remote.get(w)!;
    return names.length > 1 ? `${w} (${names.join(", ")})` : w;
  });
  if (!named.length) return "local CPU";
  return p.partial ? `${named.join(" + ")} + local CPU` : named.join(" + ");
}

/** "; worker-b contributes nothing: down (connection refused)" for each missing worker. */
export function unavailableNote(rpc: RpcTarget | undefined): string {
  return (rpc?.unavailable ?? []).map((u) => `; ${u.worker} contributes nothing: ${u.reason}`).join("");
}

const isIdle = (o: Occupant) => o.state === "restarting" || (o.state === "running" && o.inFlight === 0 && (o.queued === 0 || o.draining));

/** The decision for starting `input.target`. */
export function planStart(input: PlanInput): Decision {
  const { devices, target, maxLoadedModels } = input;
  const others = input.occupants.filter((o) => o.id !== target.id);
  const capOk = (n: number) => maxLoadedModels <= 0 || n < maxLoadedModels;
  // rpc-server serves one client at a time: a model over one of the target's workers must be gone
  // before the target starts, whatever the memory says (else its llama-server waits in rpc-server's
  // accept queue until its load times out).
  const workers = new Set(targetWorkers(devices, target.rpc));
  const blocks = (o: Occupant) => workers.size > 0 && (o.placement.workers ?? []).some((w) => workers.has(w));
  const fits = (occ: readonly Occupant[]) => (capOk(occ.length) && !occ.some(blocks) ? placeTarget(devices, freeBytes(devices, occ), target) : undefined);

  const now = fits(others);
  if (now) return { action: "start", placement: now };
  if (target.allowPartialOffload && capOk(others.length)) {
    const partial = placePartial(devices, freeBytes(devices, others), target.need);
    if (partial) return { action: "start", placement: partial };
  }

  // Victims in the order we give them up: crashed ones waiting for a restart, then idle models,
  // then busy ones (drained first), least recently used first. Pinned, loading and stopping
  // models are never chosen (the last two free their memory by themselves or not at all).
  const byLru = (a: Occupant, b: Occupant) => a.lastUsed - b.lastUsed;
  const evictable = others.filter((o) => !o.pinned && (o.state === "running" || o.state === "restarting"));
  const byClass = [
    ...evictable.filter((o) => o.state === "restarting"),
    ...evictable.filter((o) => o.state === "running" && isIdle(o)).sort(byLru),
    ...evictable.filter((o) => o.state === "running" && !isIdle(o)).sort(byLru),
  ];
  // The models holding one of the target's workers go first: they must go in any case.
  const order = [...byClass.filter(blocks), ...byClass.filter((o) => !blocks(o))];
  // Give them up one at a time until the target fits; free bytes are updated incrementally
  // (O(n) for n occupants, not O(n^2): bench/scheduler.ts plans for 100 models in well under 1 ms).
  const free = freeBytes(devices, others);
  const giveBack = (o: Occupant) => {
    for (const d of o.placement.devices) if (free.has(d.id)) free.set(d.id, free.get(d.id)! + d.bytes);
  };
  let count = others.length;
  let blocking = others.filter(blocks).length;
  const fitsNow = () => (capOk(count) && blocking === 0 ? placeTarget(devices, free, target) : undefined);
  const victims: Occupant[] = [];
  let fitted: Placement | undefined;
  for (const v of order) {
    victims.push(v);
    giveBack(v);
    count--;
    if (blocks(v)) blocking--;
    if ((fitted = fitsNow())) break;
  }
  if (fitted) {
    const idle = victims.filter(isIdle);
    const sharing = victims.filter(blocks);
    const why = sharing.length
      ? `making room for ${target.id}: RPC worker${workers.size > 1 ? "s" : ""} ${[...workers].join(", ")} serve${workers.size > 1 ? "" : "s"} one model at a time (${sharing.map((v) => v.id).join(", ")} runs over ${workers.size > 1 ? "them" : "it"})`
      : reasonFor(target.id, victims, maxLoadedModels, others.length);
    if (idle.length) return { action: "stop", models: idle.map((v) => v.id), reason: why };
    const toDrain = victims.filter((v) => !v.draining);
    if (toDrain.length) return { action: "drain", models: toDrain.map((v) => v.id), reason: `every model that must make room for ${target.id} is busy` };
    return { action: "wait", reason: `waiting for ${victims.map((v) => v.id).join(", ")} to finish their requests` };
  }
  // Would it fit once loading/stopping models are gone? Then their end is worth waiting for.
  const victimSet = new Set(victims);
  const remaining = others.filter((o) => !victimSet.has(o));
  const transient = remaining.filter((o) => !o.pinned && (o.state === "loading" || o.state === "stopping"));
  for (const t of transient) {
    giveBack(t);
    count--;
    if (blocks(t)) blocking--;
  }
  if (transient.length && fitsNow()) {
    return { action: "wait", reason: `waiting for ${transient.map((o) => `${o.id} (${o.state})`).join(", ")}` };
  }
  // A pinned model over one of its workers never leaves: say that rather than count bytes.
  const stuck = remaining.filter((o) => blocks(o) && o.pinned);
  if (stuck.length) {
    const held = stuck.map((o) => o.id).join(", ");
    return { action: "refuse", reason: `RPC worker ${[...workers].filter((w) => stuck.some((o) => o.placement.workers?.includes(w))).join(", ")} serves one model at a time and pinned ${held} runs over it${unavailableNote(target.rpc)}`, needBytes: 0, freeBytes: 0 };
  }
  return refusal(input, remaining);
}

function reasonFor(id: string, victims: Occupant[], max: number, count: number): string {
  return max > 0 && count >= max ? `making room for ${id} (maxLoadedModels ${max})` : `making room for ${id}: not enough free memory`;
}

/** Refuse with the numbers: what the model needs against the most it could ever get. */
function refusal(input: PlanInput, unmovable: readonly Occupant[]): Decision {
  const { devices, target } = input;
  const free = freeBytes(devices, unmovable);
  const gpus = devices.filter((d) => d.kind === "gpu");
  const pinned = unmovable.filter((o) => o.pinned).map((o) => o.id);
  const held = pinned.length ? ` (pinned models ${pinned.join(", ")} keep their memory)` : "";
  if (input.maxLoadedModels > 0 && unmovable.length >= input.maxLoadedModels) {
    return { action: "refuse", reason: `maxLoadedModels ${input.maxLoadedModels} reached by models that cannot be stopped${held}`, needBytes: 0, freeBytes: 0 };
  }
  if (target.rpc) return rpcRefusal(devices, free, target.need, target.rpc, held);
  const hostFree = Math.max(0, free.get("host") ?? 0);
  if (target.need.gpuBytes > 0 && gpus.length) {
    const gpuFree = gpus.reduce((n, d) => n + Math.max(0, free.get(d.id) ?? 0), 0);
    if (target.need.hostBytes > hostFree) {
      return { action: "refuse", reason: `needs ${mib(target.need.hostBytes)} of host memory, at most ${mib(hostFree)} available${held}`, needBytes: target.need.hostBytes, freeBytes: hostFree };
    }
    return {
      action: "refuse",
      reason: `needs ${mib(target.need.gpuBytes)} of GPU memory, at most ${mib(gpuFree)} available on ${gpus.length} GPU${gpus.length > 1 ? "s" : ""}${held}`,
      needBytes: target.need.gpuBytes,
      freeBytes: gpuFree,
    };
  }
  const need = target.need.hostBytes + target.need.gpuBytes;
  return { action: "refuse", reason: `needs ${mib(need)} of memory, at most ${mib(hostFree)} available${held}`, needBytes: need, freeBytes: hostFree };
}

/** The refusal of a model started with --rpc: which device lacks room, and the workers that add nothing. */
function rpcRefusal(devices: DeviceBudget[], free: Map<string, number>, need: ModelNeed, rpc: RpcTarget, held: string): Decision {
  const note = unavailableNote(rpc);
  const hostFree = Math.max(0, free.get("host") ?? 0);
  if (need.hostBytes > hostFree) {
    return { action: "refuse", reason: `needs ${mib(need.hostBytes)} of host memory, at most ${mib(hostFree)} available${held}${note}`, needBytes: need.hostBytes, freeBytes: hostFree };
  }
  const split = need.gpuBytes > 0 ? splitOverRpc(devices, free, need, rpc) : undefined;
  if (!split) {
    const bytes = need.hostBytes + need.gpuBytes;
    const nowhere = need.gpuBytes > 0 ? " (no remote device or local GPU with free memory to offload to)" : "";
    return { action: "refuse", reason: `needs ${mib(bytes)} of memory, at most ${mib(hostFree)} available${nowhere}${held}${note}`, needBytes: bytes, freeBytes: hostFree };
  }
  const label = (d: DeviceBudget) => (d.kind === "rpc" ? `${d.worker} ${d.name ?? d.id}` : `local GPU ${d.index ?? d.id}`);
  const room = (d: DeviceBudget) => Math.max(0, free.get(d.id) ?? 0);
  const total = split.order.reduce((n, d) => n + room(d), 0);
  let reason: string;
  if (need.gpuBytes > total) {
    reason = `needs ${mib(need.gpuBytes)} of device memory, at most ${mib(total)} available on ${split.order.map(label).join(" + ")}`;
  } else {
    const i = split.bytes.findIndex((b, k) => b > room(split.order[k]!));
    const d = split.order[Math.max(0, i)]!;
    const by = rpc.tensorSplit?.some((x) => x > 0) ? `its tensorSplit ${rpc.tensorSplit.join(",")}` : "llama-server's split by free memory";
    reason = `${by} puts ${mib(split.bytes[Math.max(0, i)]!)} on ${label(d)}, which has ${mib(room(d))} free`;
  }
  return { action: "refuse", reason: `${reason}${held}${note}`, needBytes: need.gpuBytes, freeBytes: total };
}

/** llama-server arguments and environment that realise a placement. */
export function placementLaunch(p: Placement, gpusPresent: boolean): { args: string[]; env: Record<string, string> } {
  const args: string[] = [];
  const env: Record<string, string> = {};
  // Never a silent slowdown: without allowPartialOffload, llama-server must not shrink the context
  // or move layers to the CPU on its own (--fit, on by default since late 2025).
  args.push("--fit", p.partial ? "on" : "off");
  if (gpusPresent) {
    // nvidia-smi's indexes are PCI bus order; make CUDA number the GPUs the same way.
    env.CUDA_DEVICE_ORDER = "PCI_BUS_ID";
    env.CUDA_VISIBLE_DEVICES = p.gpus.length ? p.gpus.join(",") : "";
    if (p.tensorSplit && p.tensorSplit.length > 1) args.push("--tensor-split", p.tensorSplit.join(","));
  }
  return { args, env };
}
