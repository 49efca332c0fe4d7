// Times GET /api/monitoring/history's query over 7 full days of minute rows (10,080), at every
// resolution, on a file database like production's (WAL). Target: < 20 ms per query.
//   bun bench/history.ts
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeDatabase, openDatabase } from "../src/db/client";
import { metricsMinute, type MetricsMinuteRow } from "../src/db/schema";
import { MetricsHistory, RESOLUTIONS, minuteOf, type Resolution } from "../src/metrics/history";

const dir = mkdtempSync(join(tmpdir(), "lap-bench-history-"));
const db = openDatabase(join(dir, "bench.db"));
try {
  const now = Date.now();
  const first = minuteOf(now) - 10_080 * 60_000;
  const rows: MetricsMinuteRow[] = [];
  for (let m = 0; m < 10_080; m++) {
    const requests = m % 7;
    rows.push({
      ts: first + m * 60_000, samples: 6,
      cpuAvg: (m * 13) % 100, cpuMax: 100, memAvg: 40 + (m % 30), memMax: 80,
      gpuUtilAvg: (m * 7) % 100, gpuUtilMax: 100, gpuMemAvg: 15, gpuMemMax: 16,
      requests, errors: 0, responseTimeAvg: requests ? 100 + (m % 400) : null,
      tokensPerSecond: requests, promptTokens: requests * 10, completionTokens: requests * 60,
    });
  }
  const t0 = performance.now();
  db.transaction((tx) => {
    for (let i = 0; i < rows.length; i += 500) tx.insert(metricsMinute).values(rows.slice(i, i + 500)).run();
  });
  const load = await Bun.file("/proc/loadavg").text().catch(() => "?");
  console.log(`cores ${navigator.hardwareConcurrency}, load average ${load.split(" ").slice(0, 3).join(" ")}`);
  console.log(`filled ${rows.length} minute rows in ${(performance.now() - t0).toFixed(1)} ms`);

  const history = new MetricsHistory(db, () => 168);
  for (const hours of [24, 168]) {
    for (const res of Object.keys(RESOLUTIONS) as Resolution[]) {
      history.query(hours, res); // warm (statement preparation, page cache)
      const times: number[] = [];
      let points = 0;
      const cpu0 = process.cpuUsage();
      const runs = 30;
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        points = history.query(hours, res).metrics.length;
        times.push(performance.now() - t);
      }
      // CPU time per query as well as wall time: on a shared, busy machine the wall time mostly
      // measures waiting for a core.
      const cpu = process.cpuUsage(cpu0);
      const cpuMs = (cpu.user + cpu.system) / 1000 / runs;
      times.sort((a, b) => a - b);
      const p50 = times[Math.floor(times.length / 2)]!;
      const max = times.at(-1)!;
      console.log(
        `hours=${String(hours).padStart(3)} resolution=${res.padEnd(3)} points=${String(points).padStart(5)}  ` +
          `wall median ${p50.toFixed(2)} ms, max ${max.toFixed(2)} ms; cpu ${cpuMs.toFixed(2)} ms/query  ${p50 < 20 ? "ok" : "OVER 20 ms"}`,
      );
    }
  }
} finally {
  closeDatabase(db);
  rmSync(dir, { recursive: true, force: true });
}
