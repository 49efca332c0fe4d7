/**
 * Reads what llama-server says it allocated, from its own log lines (llama.cpp sources):
 *
 *   src/llama-model.cpp    "load_tensors:   CPU_Mapped model buffer size =    15.62 MiB"
 *   src/llama-kv-cache.cpp "llama_kv_cache:        CPU KV buffer size =    16.00 MiB"
 *   src/llama-memory-recurrent.cpp "...:        CPU RS buffer size =     0.12 MiB"
 *   src/llama-context.cpp  "sched_reserve:        CPU compute buffer size =    66.51 MiB"
 *
 * printed at the default verbosity while the model loads, and the table of
 * common/fit.cpp common_memory_breakdown_print (verbosity 4, -lv 4; at exit and in --fit's dry run):
 *
 *   "common_memory_breakdown_print: | memory breakdown [MiB] | total   free    self   model   context   compute    unaccounted |"
 *   "common_memory_breakdown_print: |   - CUDA0 (H200)       | 143771 = 120000 + (21000 = 16000 +  4000 + 1000) +  2771 |"
 *   "common_memory_breakdown_print: |   - Host               |                      350 =   300 +     0 +   50                |"
 *
 * and "projected to use N MiB of device memory vs. M MiB of free device memory" (--fit). The
 * breakdown per device is model + context (KV, recurrent state) + compute, as llama.cpp's own
 * llama_context::memory_breakdown counts it (output buffers are not part of it).
 */
import type { MeasuredDevice } from "../db/schema";

const MiB = 1024 * 1024;

/** Buffer types that live in host memory (CPU, CPU_Mapped, CPU_REPACK, CUDA_Host pinned memory...). */
export function isHostBuffer(name: string): boolean {
  return /^(CPU|Host)/i.test(name) || /_Host$/i.test(name);
}

const BUFFER_LINE = /^(?:[\d.]+ [IWEDT] )?\S+: +(\S+) (model|KV|RS|compute) buffer size = +([\d.]+) MiB/;
const BREAKDOWN_GPU = /common_memory_breakdown_print: \|\s+- (\S+)(?: \(([^)]*)\))?\s*\|\s*(\d+) = (\d+) \+ \((\s*\d+) = (\s*\d+) \+ (\s*\d+) \+ (\s*\d+)\) \+\s+(-?\d+) \|/;
const BREAKDOWN_OTHER = /common_memory_breakdown_print: \|\s+- (\S+)(?: \([^)]*\))?\s*\|\s+(\d+) = +(\d+) \+ +(\d+) \+ +(\d+)\s+\|/;
const PROJECTED = /projected to use (\d+) MiB of (device|host) memory vs\. (\d+) MiB of (?:free device|total host) memory/;

/** Collects one llama-server's memory report from its log lines (feed every line to `line`). */
export class MemoryReportParser {
  private buffers = new Map<string, MeasuredDevice>();
  private table = new Map<string, MeasuredDevice>();
  /** "projected to use" of --fit's dry run, bytes (device or host). */
  projectedBytes?: number;

  /** Returns true when the line was part of a memory report. */
  line(text: string): boolean {
    const b = BUFFER_LINE.exec(text);
    if (b) {
      const [, name, kind, mib] = b;
      const d = this.device(this.buffers, name!);
      const bytes = Math.round(Number(mib) * MiB);
      if (kind === "model") d.modelBytes += bytes;
      else if (kind === "compute") d.computeBytes += bytes;
      else d.contextBytes += bytes;
      return true;
    }
    const g = BREAKDOWN_GPU.exec(text);
    if (g) {
      const d = this.device(this.table, g[1]!);
      d.totalBytes = Number(g[3]) * MiB;
      d.freeBytes = Number(g[4]) * MiB;
      d.modelBytes = Number(g[6]) * MiB;
      d.contextBytes = Number(g[7]) * MiB;
      d.computeBytes = Number(g[8]) * MiB;
      return true;
    }
    const o = BREAKDOWN_OTHER.exec(text);
    if (o) {
      const d = this.device(this.table, o[1]!);
      d.modelBytes = Number(o[3]) * MiB;
      d.contextBytes = Number(o[4]) * MiB;
      d.computeBytes = Number(o[5]) * MiB;
      return true;
    }
    const p = PROJECTED.exec(text);
    if (p) {
      this.projectedBytes = Number(p[1]) * MiB;
      return true;
    }
    return text.includes("common_memory_breakdown_print:");
  }

  hasTable(): boolean {
    return this.table.size > 0;
  }

  private device(map: Map<string, MeasuredDevice>, name: string): MeasuredDevice {
    let d = map.get(name);
    if (!d) map.set(name, (d = { device: name, kind: isHostBuffer(name) ? "host" : "gpu", modelBytes: 0, contextBytes: 0, computeBytes: 0 }));
    return d;
  }

  /**
   * The report: the breakdown table when llama-server printed one (it knows device totals),
   * else the buffer lines summed per buffer type. Empty when nothing was reported.
   */
  devices(): MeasuredDevice[] {
    const src = this.table.size ? this.table : this.buffers;
    return [...src.values()].filter((d) => d.modelBytes + d.contextBytes + d.computeBytes > 0 || d.totalBytes !== undefined);
  }

  totalBytes(): number {
    return this.devices().reduce((n, d) => n + d.modelBytes + d.contextBytes + d.computeBytes, 0);
  }
}

/** "0.00.733.339 I " — llama-server's log prefix: elapsed time, level letter. */
const PREFIX = /^\d+\.\d{2}\.\d{3}\.\d{3} ([IWEDT]) (.*)$/;

/**
 * What llama-server prints at its default verbosity (-lv 3), plus the few -lv 4 lines worth a
 * person's attention (memory and load stages). Taken from the real server's output at -lv 3 and
 * -lv 4 (same model, same requests): -lv 4 adds ~210 lines per load (metadata dump, print_info,
 * per-slot traces) and ~20 per request.
 */
const KEEP = [
  /^cmn +common_param: common_params_print_info: verbosity/,
  /^srv +llama_server: /,
  /^srv +load_model: (loading model|initializing|failed)/,
  /^cmn +init: llama threadpool/,
  /^cmn +common_init_: (warming up|failed)/,
  /^slot +get_availabl: .*selected slot/,
  /^slot +launch_slot_: .*processing task/,
  /^slot +print_timing: /,
  /^slot +release: /,
  /^srv +operator\(\): /,
  /^srv +start: /,
  /^load_tensors: (loading model tensors|offloaded|.* model buffer size)/,
  /^llama_kv_cache: (size = |.* KV buffer size)/,
  /^llama_memory_recurrent: (size = |.* RS buffer size)/,
  /^sched_reserve: .* compute buffer size/,
  /^llama_context: constructing/,
];

/**
 * The log filter for a llama-server we run at -lv 4 (for its memory report): warnings and
 * errors always pass; info lines pass when llama-server prints them at its default verbosity too
 * (KEEP); a continuation line (no prefix: a multi-line message) follows its first line.
 */
export class VerbosityFilter {
  private lastKept = true;

  keep(line: string): boolean {
    const m = PREFIX.exec(line);
    if (!m) return this.lastKept; // continuation of the previous message
    const [, level, text] = m;
    this.lastKept = level === "W" || level === "E" || KEEP.some((re) => re.test(text!));
    return this.lastKept;
  }
}
