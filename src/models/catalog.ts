/**
 * The model operations behind /api/models: register, edit, remove, discover. Plain functions
 * over the services (tests drive them without HTTP); the routes only validate and call these.
 * Every failure is an ApiError with the code the seed API asks for (docs/API.md, "Errors").
 */
import { stat } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, resolve } from "node:path";
import type { ModelRow, ModelSettings, NewModelRow } from "../db/schema";
import { ApiError, conflict, notFound, validationError } from "../http/errors";
import type { Services } from "../services";
import { DEFAULT_INCLUDE, inspectModelFile, scanForModels, type SkippedEntry } from "./discover";
import { slugify } from "./registry";
import type { DiscoverBody, ModelPatch, RegisterEntry } from "./schema";
import type { Model } from "./types";
import { toApiModel } from "./view";

type Deps = Pick<Services, "registry" | "supervisor" | "config"> & Partial<Pick<Services, "memory">>;

/** States in which a model's llama-server holds (or is about to hold, or still holds) the file. */
const IN_USE = new Set(["loading", "running", "stopping"]);

/** "~/models" and "models" (relative to config.basePath) become absolute paths. */
export function resolveUserPath(p: string, basePath: string): string {
  const trimmed = p.trim();
  if (trimmed === "~" || trimmed.startsWith("~/")) return resolve(homedir(), trimmed.slice(2));
  return isAbsolute(trimmed) ? resolve(trimmed) : resolve(basePath, trimmed);
}

const view = (s: Deps, row: ModelRow): Model => toApiModel(row, s.supervisor.runtimeOf(row.id), s.memory?.view(row));

export function getModel(s: Deps, id: string): Model {
  const row = s.registry.get(id);
  if (!row) throw notFound("Model not found", `No model with id "${id}"`);
  return view(s, row);
}

/**
 * Checks that none of `aliases` is already a name of another model (its id, name or alias),
 * case-insensitively, since clients type model names by hand.
 */
function checkAliases(s: Deps, ownId: string | null, aliases: string[], alsoTaken: Map<string, string> = new Map()): void {
  if (!aliases.length) return;
  const taken = new Map(alsoTaken);
  for (const row of s.registry.list()) {
    if (row.id === ownId) continue;
    for (const n of [row.id, row.name, ...(row.settings.aliases ?? [])]) taken.set(n.toLowerCase(), row.id);
  }
  for (const a of aliases) {
    const other = taken.get(a.toLowerCase());
    if (other) throw conflict("Alias already in use", `"${a}" already names model "${other}"`);
  }
}

/** POST /api/models: all entries are checked before any is written (all or nothing). */
export async function registerModels(s: Deps, entries: RegisterEntry[]): Promise<{ registered: number; models: Model[] }> {
  const basePath = s.config.get().basePath;
  const rows: NewModelRow[] = [];
  const idsInRequest = new Map<string, number>();
  const pathsInRequest = new Map<string, number>();

  // 1. Every file must exist and be readable (400 naming the offending entry).
  for (const [i, e] of entries.entries()) {
    const path = resolveUserPath(e.path, basePath);
    const where = `models[${i}] (${path})`;
    const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
      throw validationError("Invalid model path", `${where}: ${err.code === "ENOENT" ? "file does not exist" : err.code === "EACCES" ? "permission denied" : err.message}`);
    });
    if (!st.isFile()) throw validationError("Invalid model path", `${where}: not a regular file`);
    const found = await inspectModelFile(path).catch((err: Error) => {
      throw validationError("Invalid model file", `${where}: ${err.message}`);
    });
    const name = e.name ?? found.name;
    const id = e.id ?? slugify(name);
    const settings: ModelSettings = { ...(e.settings ?? {}) };
    rows.push({
      id,
      name,
      description: e.description ?? found.description ?? null,
      version: e.version ?? found.version ?? null,
      path,
      size: found.size,
      family: e.family ?? found.family,
      format: e.format ?? found.format,
      quantization: e.quantization ?? found.quantization ?? null,
      contextSize: e.contextSize ?? found.contextSize ?? null,
      mmprojPath: found.mmprojPath ?? null,
      source: "registered",
      settings,
    });
    // 2. Conflicts inside the request itself.
    if (idsInRequest.has(id)) throw conflict("Model already exists", `models[${i}]: id "${id}" is also models[${idsInRequest.get(id)}]`);
    if (pathsInRequest.has(path)) throw conflict("Model already exists", `models[${i}]: path ${path} is also models[${pathsInRequest.get(path)}]`);
    idsInRequest.set(id, i);
    pathsInRequest.set(path, i);
  }

  // 3. Conflicts with the registry. A *discovered* row at the same path is adopted, not a conflict.
  const aliasesInRequest = new Map<string, string>();
  for (const [i, r] of rows.entries()) {
    const byPath = s.registry.findByPath(r.path);
    const adopting = byPath?.source === "discovered" ? byPath : undefined;
    if (byPath && !adopting) throw conflict("Model already exists", `models[${i}]: ${r.path} is already registered as "${byPath.id}"`);
    const byId = s.registry.get(r.id);
    if (byId && byId.id !== adopting?.id) throw conflict("Model already exists", `models[${i}]: id "${r.id}" is already registered (${byId.path})`);
    const aliases = r.settings?.aliases ?? [];
    checkAliases(s, adopting?.id ?? null, aliases, aliasesInRequest);
    for (const a of aliases) aliasesInRequest.set(a.toLowerCase(), r.id);
  }

  const inserted = s.registry.register(rows);
  return { registered: inserted.length, models: inserted.map((row) => view(s, row)) };
}

/** PATCH /api/models/:id: metadata and per-model settings; a null setting removes the override. */
export function patchModel(s: Deps, id: string, patch: ModelPatch): Model {
  const row = s.registry.get(id);
  if (!row) throw notFound("Model not found", `No model with id "${id}"`);
  const settings: ModelSettings = { ...row.settings };
  if (patch.settings) {
    for (const [k, v] of Object.entries(patch.settings)) {
      if (v === null) delete (settings as Record<string, unknown>)[k];
      else if (v !== undefined) (settings as Record<string, unknown>)[k] = v;
    }
    checkAliases(s, id, settings.aliases ?? []);
  }
  const updated = s.registry.update(id, {
    ...(patch.name !== undefined ? { name: patch.name } : {}),
    ...(patch.description !== undefined ? { description: patch.description } : {}),
    ...(patch.family !== undefined ? { family: patch.family } : {}),
    ...(patch.version !== undefined ? { version: patch.version } : {}),
    ...(patch.contextSize !== undefined ? { contextSize: patch.contextSize } : {}),
    ...(patch.mmprojPath !== undefined ? { mmprojPath: patch.mmprojPath === null ? null : resolveUserPath(patch.mmprojPath, s.config.get().basePath) } : {}),
    ...(patch.settings ? { settings } : {}),
  });
  if (!updated) throw notFound("Model not found", `No model with id "${id}"`);
  return view(s, updated);
}

/** DELETE /api/models/:id: the registry entry only; the file on disk is never touched. */
export function removeModel(s: Deps & Partial<Pick<Services, "pool">>, id: string): { modelId: string } {
  const row = s.registry.get(id);
  if (!row) throw notFound("Model not found", `No model with id "${id}"`);
  // A start accepted by the pool may still be making room (stopping another model) before the
  // supervisor shows "loading": the model is already spoken for.
  if (s.pool?.isStarting(id)) {
    throw conflict("Model is currently in use", `Model "${id}" is starting; stop it first (POST /api/models/${id}/stop)`);
  }
  const runtime = s.supervisor.runtimeOf(id);
  if (runtime && IN_USE.has(runtime.state)) {
    throw conflict("Model is currently in use", `Model "${id}" is ${runtime.state}; stop it first (POST /api/models/${id}/stop)`);
  }
  s.registry.remove(id);
  return { modelId: id };
}

export interface DiscoverResult {
  discovered: Model[];
  scannedPaths: string[];
  totalFound: number;
  /** Beyond the seed API: what could not be read and why, models whose file vanished, timing. */
  skipped: SkippedEntry[];
  added: string[];
  missing: string[];
  durationMs: number;
}

/** POST /api/models/discover and the startup scan. */
export async function discoverModels(s: Deps, body: DiscoverBody, signal?: AbortSignal): Promise<DiscoverResult> {
  const basePath = s.config.get().basePath;
  const roots = [...new Set((body.paths ?? [basePath]).map((p) => resolveUserPath(p, basePath)))];
  for (const root of roots) {
    const st = await stat(root).catch(() => undefined);
    if (!st) throw validationError("Invalid paths", `${root} does not exist`);
    if (!st.isDirectory()) throw validationError("Invalid paths", `${root} is not a directory`);
  }
  const recursive = body.recursive ?? true;
  let scan;
  try {
    scan = await scanForModels({
      roots,
      recursive,
      includePatterns: body.includePatterns ?? DEFAULT_INCLUDE,
      excludePatterns: body.excludePatterns ?? [],
      maxDepth: body.maxDepth,
      signal,
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    // Per-entry errors are already in `skipped`; reaching here means the scan itself broke.
    throw new ApiError("INTERNAL_ERROR", "File system error", (err as Error).message);
  }
  const applied = s.registry.applyScan(scan.models, roots, recursive);
  return {
    discovered: applied.rows.map((row) => view(s, row)),
    scannedPaths: scan.scannedPaths,
    totalFound: applied.rows.length,
    skipped: scan.skipped,
    added: applied.added,
    missing: applied.missing,
    durationMs: scan.durationMs,
  };
}

/**
 * The startup scan of config.basePath: in the background, logged, never fatal, abortable so
 * shutdown does not wait for a slow disk (and never writes to a closed database).
 */
export function startBackgroundDiscovery(s: Deps & Pick<Services, "log">): { done: Promise<void>; abort: () => void } {
  const controller = new AbortController();
  const basePath = s.config.get().basePath;
  const done = (async () => {
    const st = await stat(basePath).catch(() => undefined);
    if (!st?.isDirectory()) {
      s.log.info(`Model folder ${basePath} not found; skipping the startup scan`);
      return;
    }
    try {
      const r = await discoverModels(s, { paths: [basePath] }, controller.signal);
      if (controller.signal.aborted) return;
      s.log.info(`Startup scan of ${basePath}: ${r.totalFound} model(s), ${r.added.length} new, ${r.missing.length} missing, ${r.skipped.length} skipped in ${r.durationMs} ms`, {
        ...(r.skipped.length ? { skipped: r.skipped.slice(0, 20) } : {}),
      });
    } catch (err) {
      if (controller.signal.aborted) return;
      s.log.warn(`Startup scan of ${basePath} failed: ${(err as Error).message}`);
    }
  })();
  return { done, abort: () => controller.abort() };
}
