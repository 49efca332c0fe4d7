import { Hono } from "hono";
import { z } from "../zod";
import { ok } from "../http/envelope";
import { validationError } from "../http/errors";
import { validate } from "../http/validate";
import { applyLlamaSwapPlan, ImportError, planLlamaSwapImport } from "../import/llama-swap";
import type { Services } from "../services";

/**
 * The YAML travels inside a JSON body ({yaml: "..."}), so this route keeps the rule that every
 * POST under /api is application/json. 512 KiB of YAML (the /api body limit is 1 MiB; llama-swap's
 * fully documented example is ~25 KB).
 */
export const MAX_IMPORT_YAML_CHARS = 512 * 1024;
export const llamaSwapImportBodySchema = z.strictObject({
  yaml: z
    .string({ error: "yaml must be a string: the text of a llama-swap config.yaml" })
    .check(z.minLength(1, "yaml must not be empty"), z.maxLength(MAX_IMPORT_YAML_CHARS, `yaml must be at most ${MAX_IMPORT_YAML_CHARS / 1024} KiB`)),
  dryRun: z.optional(z.boolean({ error: "dryRun must be true or false" })),
});

/** /api/import: bring another tool's set-up over. */
export function importRoutes(s: Services) {
  return new Hono().post("/llama-swap", validate("json", llamaSwapImportBodySchema), async (c) => {
    const { yaml, dryRun = false } = c.req.valid("json");
    let plan;
    try {
      // Relative model paths: against the models folder (a request has no working directory).
      plan = planLlamaSwapImport(yaml, { env: process.env, baseDir: s.config.get().basePath });
    } catch (err) {
      if (err instanceof ImportError) throw validationError("Invalid llama-swap configuration", err.message);
      throw err;
    }
    const planned = plan.models.map((m) => ({ from: m.from, id: m.entry.id, name: m.entry.name, path: m.entry.path, settings: m.entry.settings, notes: m.notes }));
    // A peer's apiKey is never echoed: only whether one is set.
    const peers = plan.peers.map((p) => ({ from: p.item, name: p.peer.name, url: p.peer.url, models: p.peer.models ?? [], hasApiKey: p.peer.apiKey !== undefined, notes: p.notes }));
    if (dryRun) {
      return ok(c, { dryRun: true, models: planned, peers, config: plan.config, notImported: plan.notImported, notes: plan.notes, registered: [], addedPeers: [], failed: [] }, { message: "Import planned (nothing changed)" });
    }
    const result = await applyLlamaSwapPlan(s, plan);
    if (result.addedPeers.length) s.log.info(`Added ${result.addedPeers.length} peer(s) from a llama-swap configuration`, { names: result.addedPeers.map((p) => p.name) });
    if (result.registered.length) s.log.info(`Imported ${result.registered.length} model(s) from a llama-swap configuration`, { ids: result.registered.map((r) => r.id) });
    return ok(
      c,
      { dryRun: false, models: planned, peers, config: result.config, notImported: plan.notImported, notes: plan.notes, registered: result.registered, addedPeers: result.addedPeers, failed: result.failed },
      { message: `Imported ${result.registered.length} of ${plan.models.length} model(s), added ${result.addedPeers.length} of ${plan.peers.length} peer(s)` },
    );
  });
}
