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
  private readonly steps: Array<[string, number]> = [];
  private last: number;

  constructor(origin = 0) {
    this.last = origin;
  }

  /** Records the time since the previous mark under `name`. */
  mark(name: string): void {
    const now = performance.now();
    this.steps.push([name, now - this.last]);
    this.last = now;
  }

  /** "modules 31.2, config 0.8, ..." in the order the steps ran (steps under 0.05 ms left out). */
  describe(): string {
    const merged = new Map<string, number>();
    for (const [name, ms] of this.steps) merged.set(name, (merged.get(name) ?? 0) + ms);
    return [...merged]
      .filter(([, ms]) => ms >= 0.05)
      .map(([name, ms]) => `${name} ${ms.toFixed(1)}`)
      .join(", ");
  }

  /** Total of every step (ms). */
  get totalMs(): number {
    return this.steps.reduce((sum, [, ms]) => sum + ms, 0);
  }
}
