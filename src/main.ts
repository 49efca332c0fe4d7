#!/usr/bin/env bun
import { HELP, parseCli, UsageError } from "./cli";
import { runLlamaSwapImport } from "./import/cli";
import { runKeysCommand } from "./keys/cli";
import { WORKER_HELP } from "./rpc/cli";
import { runWorker } from "./rpc/main";
import { startServer } from "./server";
import { StartupTimings } from "./startup";
import { APP_NAME, APP_VERSION } from "./version";

async function main(): Promise<void> {
  // Everything until here is the runtime's start and the evaluation of the imported modules.
  const startup = new StartupTimings();
  startup.mark("runtime + modules");
  let cli;
  try {
    cli = parseCli(Bun.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\nRun with --help for usage.\n`);
      process.exit(2);
    }
    throw err;
  }
  if (cli.kind === "help") return void process.stdout.write(HELP);
  if (cli.kind === "version") return void process.stdout.write(`${APP_VERSION}\n`);
  if (cli.kind === "keys") process.exit(runKeysCommand(cli.command, (t) => process.stdout.write(t), (t) => process.stderr.write(t)));
  if (cli.kind === "worker-help") return void process.stdout.write(WORKER_HELP);
  if (cli.kind === "worker") return runWorker(cli.options);
  if (cli.kind === "import") {
    process.exit(await runLlamaSwapImport(cli, (t) => process.stdout.write(t), (t) => process.stderr.write(t)));
  }

  // Clean shutdown: stop accepting, stop children, close the database. Installed before we start
  // listening, so a signal that arrives the moment "listening on" is printed is not lost to the
  // default handler. A second signal while shutting down forces the exit, so a stuck child can
  // never make us unkillable by Ctrl-C.
  let running: Awaited<ReturnType<typeof startServer>> | undefined;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) process.exit(130);
    if (!running) process.exit(0); // nothing to clean up yet
    running.services.log.info(`Received ${sig}, shutting down`);
    running.stop().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`error during shutdown: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // SIGHUP re-reads the configuration file (as the file watcher does), it does not stop us.
  process.on("SIGHUP", () => {
    if (!running) return;
    running.services.log.info("Received SIGHUP, reloading the configuration file");
    running.services.reloader.reload();
  });

  // The readiness line goes to stdout whatever the log level (scripts and tests wait for it),
  // as soon as the server answers (before its background starts: src/server.ts); the log buffer
  // gets it too, for the console's log view. From then on a signal stops it cleanly.
  const bannerOf = (url: string) => `${APP_NAME} ${APP_VERSION} listening on ${url}`;
  const onListening = (srv: NonNullable<typeof running>) => {
    running = srv;
    // console.log rather than process.stdout for the reason in src/logs/logger.ts.
    console.log(bannerOf(srv.url));
  };
  try {
    running = await startServer({ ...cli.options, startup, onListening });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "EADDRINUSE" ? `port ${cli.options.port} is already in use` : e.message;
    process.stderr.write(`error: cannot start: ${why}\n`);
    process.exit(1);
  }
  const { services, url } = running;
  if (cli.insecure) services.log.warn(`Serving on ${cli.options.host} WITHOUT authentication (--insecure-no-auth)`);
  // The executable starts with the JIT's tier-up thresholds scaled up (scripts/build.ts,
  // --compile-jit-policy): start-up runs each module's code once (hundreds of schemas built,
  // routes registered), which the JIT would compile on two threads for nothing. That includes
  // the routes added behind the listen (src/core-app.ts): once they are in, serving is the hot
  // path, back to the normal policy. (Put back at the listen instead, their schemas were
  // JIT-compiled: idle RSS +3.5 MB in bench/footprint.ts.) A no-op under `bun run`.
  void running.routesReady.then(() => Bun.unsafe.setJITPolicy(1));
  services.logs.append("info", "proxy", bannerOf(url), { dataDir: cli.options.dataDir, config: cli.options.configPath });
}

await main();
