// The server side of bench/ws.ts: a real server on a free port with a short metrics interval.
// Prints one JSON line {"url": ...} once listening; stops cleanly on SIGTERM/SIGINT.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "../src/server";

const intervalMs = Number(process.env.BENCH_METRICS_INTERVAL_MS ?? 1000);
const dir = mkdtempSync(join(tmpdir(), "lap-bench-ws-"));
const running = await startServer({
  port: 0,
  host: "127.0.0.1",
  dataDir: dir,
  configPath: join(dir, "llama-server-config.json"),
  logLevel: "warn",
  environment: "bench",
  quiet: true,
  databasePath: ":memory:",
  realtime: { metricsIntervalMs: intervalMs },
});
// The collector drives metrics_update (one fresh sample per broadcast, so every round has its own
// SystemMetrics timestamp); the hub's timer matches it.
running.services.config.update({ ...running.services.config.get(), metricsIntervalSeconds: Math.max(1, Math.round(intervalMs / 1000)) });
process.stdout.write(JSON.stringify({ url: running.url }) + "\n");

// Server-side cost of each broadcast (serialize once, publish natively, account per client),
// to tell the server's fan-out apart from the bench clients' own receive loop.
const hub = running.services.hub;
const original = hub.broadcast.bind(hub);
const durations: number[] = [];
hub.broadcast = (topic, data) => {
  const t = performance.now();
  original(topic, data);
  if (topic === "metrics") durations.push(performance.now() - t);
};
const stop = async () => {
  if (durations.length) {
    durations.sort((a, b) => a - b);
    const median = durations[Math.floor(durations.length / 2)]!;
    process.stderr.write(`server: ${durations.length} metrics broadcasts to ${hub.stats().connected_clients} clients, publish+accounting median ${median.toFixed(2)} ms, max ${durations.at(-1)!.toFixed(2)} ms\n`);
  }
  await running.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
