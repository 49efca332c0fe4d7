// bench/scheduler: how long one planning decision takes (src/supervisor/planner.ts planStart) with
// many models on the machine, for the three kinds of answer (start at once; stop LRU models to make
// room; refuse), on the host alone, on 8 GPUs where most starts need a split, and over RPC workers.
//
//   bun bench/scheduler.ts [models=100] [rounds=2000]
//
// Target: < 1 ms per decision with 100 models.
import { planStart, type DeviceBudget, type Occupant, type PlanInput } from "../src/supervisor/planner";

const models = Number(process.argv[2] ?? 100);
const rounds = Number(process.argv[3] ?? 2000);
const G = 1024 ** 3;

function occupants(n: number, gpus: number): Occupant[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `m${i}`,
    state: "running" as const,
    inFlight: i % 7 === 0 ? 1 : 0,
    queued: 0,
    lastUsed: (i * 7919) % n,
    pinned: i % 23 === 0,
    draining: false,
    placement: {
      devices: gpus ? [{ id: `gpu${i % gpus}`, bytes: 1.2 * G }, { id: "host", bytes: 0.1 * G }] : [{ id: "host", bytes: 1.2 * G }],
      gpus: gpus ? [i % gpus] : [],
    },
  }));
}

function scenario(name: string, input: PlanInput) {
  // Warm up, then time `rounds` decisions.
  for (let i = 0; i < 200; i++) planStart(input);
  const t0 = performance.now();
  let action = "";
  for (let i = 0; i < rounds; i++) action = planStart(input).action;
  const per = (performance.now() - t0) / rounds;
  console.log(`${name.padEnd(58)} ${action.padEnd(7)} ${(per * 1000).toFixed(1).padStart(7)} µs/decision  ${per < 1 ? "OK (< 1 ms)" : "OVER 1 ms"}`);
  return per;
}

const host: DeviceBudget = { id: "host", kind: "host", capacityBytes: 256 * G };
const gpus: DeviceBudget[] = Array.from({ length: 8 }, (_, i) => ({ id: `gpu${i}`, kind: "gpu", index: i, capacityBytes: 140 * G }));
const layers = (gb: number, n = 80) => new Array(n).fill((gb * G) / n);

console.log(`planStart with ${models} models loaded, ${rounds} decisions each`);
const results = [
  scenario("host only: fits beside the others", { devices: [{ ...host, capacityBytes: 512 * G }], occupants: occupants(models, 0), target: { id: "new", need: { gpuBytes: 0, hostBytes: 4 * G, gpuLayerBytes: [] }, allowPartialOffload: false }, maxLoadedModels: 0 }),
  scenario("host only: stop LRU idle models until it fits", { devices: [host], occupants: occupants(models, 0), target: { id: "new", need: { gpuBytes: 0, hostBytes: 150 * G, gpuLayerBytes: [] }, allowPartialOffload: false }, maxLoadedModels: 0 }),
  scenario("host only: can never fit (refuse)", { devices: [host], occupants: occupants(models, 0), target: { id: "new", need: { gpuBytes: 0, hostBytes: 300 * G, gpuLayerBytes: [] }, allowPartialOffload: false }, maxLoadedModels: 0 }),
  scenario("8 GPUs: one GPU has room", { devices: [host, ...gpus], occupants: occupants(models, 8), target: { id: "new", need: { gpuBytes: 20 * G, hostBytes: 1 * G, gpuLayerBytes: layers(20) }, allowPartialOffload: false }, maxLoadedModels: 0 }),
  scenario("8 GPUs: split over several (80 layers)", { devices: [host, ...gpus], occupants: occupants(models, 8), target: { id: "new", need: { gpuBytes: 300 * G, hostBytes: 1 * G, gpuLayerBytes: layers(300) }, allowPartialOffload: false }, maxLoadedModels: 0 }),
  scenario("8 GPUs: evict LRU models, then split", { devices: [host, ...gpus], occupants: occupants(models, 8), target: { id: "new", need: { gpuBytes: 1000 * G, hostBytes: 1 * G, gpuLayerBytes: layers(1000) }, allowPartialOffload: false }, maxLoadedModels: 0 }),
  scenario("maxLoadedModels cap reached", { devices: [{ ...host, capacityBytes: 512 * G }], occupants: occupants(models, 0), target: { id: "new", need: { gpuBytes: 0, hostBytes: 1 * G, gpuLayerBytes: [] }, allowPartialOffload: false }, maxLoadedModels: models }),
];
// RPC workers (#13): 4 workers with 2 GPUs of 80 GB each; every 10th model runs over one of them.
const remote: DeviceBudget[] = Array.from({ length: 8 }, (_, i) => ({ id: `rpc:w${i >> 1}/CUDA${i & 1}`, kind: "rpc", worker: `w${i >> 1}`, name: `CUDA${i & 1}`, capacityBytes: 80 * G }));
const overWorkers = (n: number, holdW0: boolean): Occupant[] =>
  occupants(n, 8).map((o, i) => (i % 10 === 0 && (holdW0 || i % 40 !== 0) ? { ...o, pinned: false, placement: { ...o.placement, devices: [{ id: `rpc:w${(i / 10) % 4 | 0}/CUDA0`, bytes: 1.2 * G }, ...o.placement.devices], workers: [`w${(i / 10) % 4 | 0}`] } } : o));
const rpcTarget = { devices: remote.slice(0, 2).map((d) => d.id), unavailable: [] }; // w0 (2 devices)
results.push(
  scenario("8 GPUs + 4 RPC workers: over w0 and the GPUs", { devices: [host, ...gpus, ...remote], occupants: overWorkers(models, false), target: { id: "new", need: { gpuBytes: 300 * G, hostBytes: 1 * G, gpuLayerBytes: layers(300) }, allowPartialOffload: false, rpc: rpcTarget }, maxLoadedModels: 0 }),
  scenario("8 GPUs + 4 RPC workers: the model on worker w0 goes first", { devices: [host, ...gpus, ...remote], occupants: overWorkers(models, true), target: { id: "new", need: { gpuBytes: 300 * G, hostBytes: 1 * G, gpuLayerBytes: layers(300) }, allowPartialOffload: false, rpc: rpcTarget }, maxLoadedModels: 0 }),
);
const worst = Math.max(...results);
console.log(`worst: ${(worst * 1000).toFixed(1)} µs per decision (${worst < 1 ? "within" : "over"} the 1 ms target)`);
