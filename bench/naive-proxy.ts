// The "naive Bun passthrough" anchor of shared/BENCHMARKS.md: Bun.serve + fetch(upstream), returned as is.
const upstream = process.argv[2]!;
const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  idleTimeout: 0,
  fetch: (req) => {
    const u = new URL(req.url);
    return fetch(upstream + u.pathname + u.search, { method: req.method, headers: req.headers, body: req.body });
  },
});
console.log(`listening on http://127.0.0.1:${server.port}`);
