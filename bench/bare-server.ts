// The "bare compiled Bun.serve" anchor of bench/footprint.ts: nothing but Bun.serve answering
// GET /api/monitoring with a small JSON envelope (the shape of ours, fixed values). Compiled by
// footprint.ts with the same `bun build --compile` flags as the product (scripts/build.ts BUILD_FLAGS).
//
//   bare-server --port <n> --host 127.0.0.1
export {}; // a module, not a script: its names stay its own
const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : dflt;
};
const server = Bun.serve({
  port: Number(arg("--port", "0")),
  hostname: arg("--host", "127.0.0.1"),
  fetch(req) {
    if (new URL(req.url).pathname === "/api/monitoring") {
      return Response.json({
        success: true,
        data: {
          timestamp: new Date().toISOString(),
          cpu: { usage: 12.5, cores: 2, model: "bench" },
          memory: { used: 1000, total: 24000, free: 23000, usagePercent: 4.2 },
          models: { active: 0, total: 0, memoryUsage: 0 },
          requests: { total: 0, active: 0, averageResponseTime: 0, errorRate: 0 },
          uptime: 1,
        },
        timestamp: new Date().toISOString(),
      });
    }
    return new Response("not found", { status: 404 });
  },
});
process.stdout.write(`bare listening on http://127.0.0.1:${server.port}\n`);
