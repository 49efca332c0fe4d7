// The "naive Bun passthrough" anchor of shared/BENCHMARKS.md: Bun.serve + fetch(upstream), returned
// as is. One addition so it survives a long run: a stale keep-alive socket (ECONNRESET before any
// answer; llama-server closes some connections after a stream) is retried once on a new connection.
const upstream = process.argv[2]!;
const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  idleTimeout: 0,
  fetch: async (req) => {
    const u = new URL(req.url);
    const body = await req.arrayBuffer();
    const init = { method: req.method, headers: req.headers, body: body.byteLength ? body : undefined };
    try {
      return await fetch(upstream + u.pathname + u.search, init);
    } catch (err) {
      if ((err as { code?: string }).code !== "ECONNRESET") throw err;
      return fetch(upstream + u.pathname + u.search, { ...init, keepalive: false });
    }
  },
});
console.log(`listening on http://127.0.0.1:${server.port}`);
