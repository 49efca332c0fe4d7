import { startWorker, WORKER_BANNER, type RunningWorker, type WorkerOptions } from "./worker";

/** `llama-async-proxy worker`: serve until SIGINT/SIGTERM, then stop rpc-server and exit. */
export async function runWorker(options: WorkerOptions): Promise<void> {
  let worker: RunningWorker | undefined;
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1 || !worker) process.exit(130);
    worker.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    worker = await startWorker(options);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`error: cannot start the worker: ${e.code === "EADDRINUSE" ? `port ${options.port} is already in use` : e.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${WORKER_BANNER(worker.url)}\n`);
  process.stderr.write(`rpc-server will listen on ${worker.rpc.endpoint} (no authentication: keep this network trusted)\n`);
}
