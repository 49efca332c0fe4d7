// `npm run build`: one self-contained executable in dist/ (bun build --compile). The migrations
// (src/db/migrations.macro.ts), package.json and the console's static files are embedded.
//
// --bytecode: the modules ship as precompiled bytecode, so start-up does not parse ~1 MB of
// JavaScript (bench/footprint.ts: CPU to the first answer about halved). ESM output keeps
// main.ts's top-level await (bytecode otherwise defaults to CommonJS).
//
// --compile-jit-policy: the executable starts with the JIT's tier-up thresholds scaled up, so the
// run-once code of start-up (hundreds of schemas built, routes registered) stays in the
// interpreter instead of being compiled on two threads; main.ts puts the normal policy back
// (Bun.unsafe.setJITPolicy(1)) once the routes behind the listen are in. Measured
// (bench/RESULTS.md "#16"): CPU to the first answer ~109 -> ~70 ms, idle RSS -2 to -5 MB;
// serving is JIT-compiled as before.
// 256 rather than 64 since the routes load behind the listen: 22 alternated starts, p50 to the
// first 200 -1.1 / -2.2 ms and idle RSS -0.4 / -0.6 MB in two rounds.
//
// --no-compile-autoload-dotenv, --no-compile-autoload-bunfig: a Bun executable otherwise reads
// .env and bunfig.toml from whatever directory it is started in. A bunfig.toml `preload` there
// ran its code (even for --version), and a .env set PORT, HOST, CONFIG_PATH (so the binary we
// start) or API_KEY without a word: running the proxy from a downloaded project's folder must
// not do either (tests/e2e/compiled.test.ts). Settings come from flags and the real environment.
//
// --bytecode-order: profile-guided layout. The build runs the executable once (start-up, the
// first /api/monitoring and console page, shutdown) with BUN_BYTECODE_ORDER_OUT, then builds again
// with that profile: the bytecode start-up uses lies together at the front of the file, so less
// of the executable is read and decoded (idle RSS -2 to -3 MB). The profile holds function hashes
// only and is thrown away. BYTECODE_ORDER=0 skips the recording (one build, same behaviour).
import { $ } from "bun";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

/** The flags of every build of the product; bench/footprint.ts builds its bare anchor with them too. */
export const BUILD_FLAGS = [
  "--compile", "--minify", "--sourcemap", "--bytecode", "--format=esm", "--compile-jit-policy=256",
  "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
];

/**
 * Runs the executable the way a user first meets it and returns the bytecode-order profile it
 * wrote on exit, or null when that did not work (the build then goes ahead without one).
 */
async function recordStartupProfile(exe: string, dir: string): Promise<string | null> {
  const order = join(dir, "startup.order");
  const child = Bun.spawn([exe, "--port", "0", "--host", "127.0.0.1", "--data-dir", join(dir, "data")], {
    env: { ...process.env, HOME: dir, BUN_BYTECODE_ORDER_OUT: order },
    stdout: "pipe",
    stderr: "ignore",
  });
  // Bounded: a binary that never says it listens is killed, and the build carries on without a profile.
  const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    let seen = "";
    const decoder = new TextDecoder();
    const reader = child.stdout.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += decoder.decode(value, { stream: true });
      const url = seen.match(/listening on (http:\/\/\S+)/)?.[1];
      if (!url) continue;
      for (const path of ["/api/monitoring", "/", "/api/models", "/api/monitoring"]) await (await fetch(url + path)).arrayBuffer();
      child.kill("SIGTERM");
      break;
    }
    await child.exited;
    return statSync(order, { throwIfNoEntry: false })?.size ? order : null;
  } catch (err) {
    console.warn(`recording the start-up profile failed: ${(err as Error).message}`);
    child.kill("SIGKILL");
    return null;
  } finally {
    clearTimeout(killer);
  }
}

if (import.meta.main) {
  const out = resolve(process.env.OUTFILE ?? "dist/llama-async-proxy");
  mkdirSync(dirname(out), { recursive: true });
  await $`bun build src/main.ts ${BUILD_FLAGS} --outfile ${out}`;
  if (process.env.BYTECODE_ORDER !== "0") {
    const dir = mkdtempSync(join(tmpdir(), "lap-build-"));
    try {
      const order = await recordStartupProfile(out, dir);
      if (order) await $`bun build src/main.ts ${BUILD_FLAGS} --bytecode-order=${order} --outfile ${out}`;
      else console.warn("no start-up profile: built without --bytecode-order");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`built ${out}`);
}
