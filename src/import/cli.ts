import { readFileSync, statSync } from "node:fs";
import { createServices, shutdownServices, type RuntimeOptions } from "../services";
import { applyLlamaSwapPlan, formatPlan, ImportError, MAX_LLAMA_SWAP_YAML_BYTES, planLlamaSwapImport } from "./llama-swap";

/**
 * `llama-async-proxy import llama-swap <file> [--dry-run]`. Returns the exit status: 0 when the
 * import ran (even if some entries were not imported: they are listed), 1 when the file could not
 * be used at all or a planned model failed to register.
 */
export async function runLlamaSwapImport(
  cli: { file: string; dryRun: boolean; options: RuntimeOptions },
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  let text: string;
  try {
    const size = statSync(cli.file).size;
    if (size > MAX_LLAMA_SWAP_YAML_BYTES) throw new ImportError(`${cli.file} is larger than ${MAX_LLAMA_SWAP_YAML_BYTES / 1024} KiB`);
    text = readFileSync(cli.file, "utf8");
  } catch (e) {
    err(`error: cannot read ${cli.file}: ${(e as Error).message}\n`);
    return 1;
  }
  let plan;
  try {
    // llama-swap resolves relative model paths against the directory it runs in.
    plan = planLlamaSwapImport(text, { env: process.env, baseDir: process.cwd() });
  } catch (e) {
    if (!(e instanceof ImportError)) throw e;
    err(`error: ${cli.file}: ${e.message}\n`);
    return 1;
  }
  if (cli.dryRun) {
    out(`Dry run of importing ${cli.file} (nothing is changed):\n`);
    out(formatPlan(plan));
    return 0;
  }
  const services = createServices({ ...cli.options, quiet: true });
  try {
    const result = await applyLlamaSwapPlan(services, plan);
    out(formatPlan(plan, result));
    out(`${result.registered.length} model(s) registered, ${result.addedPeers.length} peer(s) added, ${result.failed.length} failed, ${plan.notImported.length} item(s) not imported.\n`);
    return result.failed.length ? 1 : 0;
  } finally {
    await shutdownServices(services);
  }
}
