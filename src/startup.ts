/**
 * Start-up step timings: how long each step before (and just after) the listen took, reported as
 * one debug log line ("Start-up steps (ms): ...") so a slow start can be pinned on its step
 * without a profiler. bench/footprint.ts prints that line.
 *
 * Steps run one after another; each records the time since the previous mark, so the figures add
 * up to the time since the process started (performance.now() counts from process start in Bun:
 * the first mark, "modules", is the runtime's start plus evaluating every statically imported
 * module).
 */
export class StartupTimings {
  private readonly steps: Array<[string, number, number]> = [];
  private last: number;
  private lastCpu = 0;

  constructor(origin = 0) {
    this.last = origin;
    // From process start (origin 0) the CPU count starts at 0 too; from a later origin, now.
    this.lastCpu = origin === 0 ? 0 : cpuMs();
  }

  /** Records the time (and the process's CPU time, every thread) since the previous mark under `name`. */
  mark(name: string): void {
    const now = performance.now();
    const cpu = cpuMs();
    this.steps.push([name, now - this.last, cpu - this.lastCpu]);
    this.last = now;
    this.lastCpu = cpu;
  }

  /**
   * "modules 31.2, config 0.8, ..." in the order the steps ran (steps under 0.05 ms left out).
   * `cpu`: the CPU time of each step instead, the figure that a busy machine does not inflate.
   */
  describe(what: "wall" | "cpu" = "wall"): string {
    const merged = new Map<string, number>();
    for (const [name, wall, cpu] of this.steps) merged.set(name, (merged.get(name) ?? 0) + (what === "cpu" ? cpu : wall));
    return [...merged]
      .filter(([, ms]) => ms >= 0.05)
      .map(([name, ms]) => `${name} ${ms.toFixed(1)}`)
      .join(", ");
  }

  /** Total CPU time of every step (ms). */
  get totalCpuMs(): number {
    return this.steps.reduce((sum, [, , cpu]) => sum + cpu, 0);
  }

  /** Total of every step (ms). */
  get totalMs(): number {
    return this.steps.reduce((sum, [, ms]) => sum + ms, 0);
  }
}

/** CPU time this process has used so far, user + system, all threads (ms). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
