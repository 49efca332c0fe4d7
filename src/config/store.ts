import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { EventBus } from "../events";
import type { Logger } from "../logs/logger";
import { z } from "../zod";
import { describeIssues } from "../http/validate";
import { MODEL_ID_RE, modelSettingsSchema } from "../models/schema";
import { namedKeysSchema, type NamedKey } from "../keys/keys";
import { EXTRA_DEFAULTS, llamaServerConfigSchema, type ConfigUpdate, type LlamaServerConfig } from "./schema";

/** The seed API's getDefaultConfig(): what a fresh install runs with. */
export function getDefaultConfig(): LlamaServerConfig {
  return {
    host: "localhost",
    port: 8134,
    basePath: join(homedir(), "models"),
    // A bare name is looked up on PATH when a model starts; "not found" is reported, not fatal.
    serverPath: Bun.which("llama-server") ?? "llama-server",
    ctx_size: 8192,
    batch_size: 512,
    threads: -1,
    gpu_layers: -1,
    ...EXTRA_DEFAULTS,
  };
}

/** The seed API's validateConfig(). */
export function validateConfig(config: Partial<LlamaServerConfig>): { valid: boolean; errors: string[] } {
  const result = llamaServerConfigSchema.safeParse({ ...getDefaultConfig(), ...config });
  return result.success ? { valid: true, errors: [] } : { valid: false, errors: describeIssues(result.error).split("; ") };
}

/** The temp files writeFileAtomic creates: `.<ms>-<pid>-<random>.tmp`. */
const ATOMIC_TEMP = /^\.\d+-(\d+)-[a-z0-9]+\.tmp$/;

/**
 * Removes temp files a killed process (kill -9 between write and rename) left in `dir`: those of
 * writeFileAtomic whose writer is no longer running. Called at start for the config's and the
 * data folder. Returns how many went.
 */
export function removeStaleTempFiles(dir: string, isRunning: (pid: number) => boolean): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const m = ATOMIC_TEMP.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    // Ours (being written right now) or a live writer's: not stale.
    if (pid === process.pid || isRunning(pid)) continue;
    try {
      rmSync(join(dir, name), { force: true });
      removed++;
    } catch {
      // not ours to remove (permissions): leave it
    }
  }
  return removed;
}

/**
 * Writes `text` to `path` so that a crash at any moment leaves either the old file or the new
 * one, never a torn mix: write a temp file in the same directory, fsync it, rename it over the
 * target (atomic on POSIX), then fsync the directory so the rename itself is durable.
 */
export function writeFileAtomic(path: string, text: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2)}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "w", 0o644);
    const buf = Buffer.from(text);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dfd = openSync(dir, "r");
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename already happened.
  }
}

/**
 * Owns llama-server-config.json. A missing file means defaults. A corrupt or invalid file is
 * reported (loadError, log, /api/health) and left untouched until a valid update replaces it,
 * so a typo made by hand is never silently thrown away.
 */
/** The optional per-model section of the file: {"models": {"<id>": {ctxSize, gpuLayers, ...}}}. */
export const fileModelsSchema = z
  .record(z.string().check(z.regex(MODEL_ID_RE, "models: keys must be model ids")), z.partial(modelSettingsSchema), {
    error: "models must be an object of model id: settings",
  })
  .check(z.refine((m) => Object.keys(m).length <= 1000, "models: at most 1000 entries"));
export type FileModels = z.infer<typeof fileModelsSchema>;

type ReadResult = { ok: true; config: LlamaServerConfig; models: FileModels; keys: NamedKey[] } | { ok: false; why: string };

export class ConfigStore {
  private current: LlamaServerConfig;
  /** Per-model settings from the file's `models` section (applied by src/config/reload.ts). */
  private models: FileModels = {};
  /** Named API keys from the file's `keys` section (hashes only; src/keys/keys.ts). */
  private keys: NamedKey[] = [];
  /** Why the file on disk could not be used, or null when it is fine (or absent). */
  loadError: string | null = null;

  constructor(
    readonly path: string,
    private readonly log?: Logger,
    private readonly bus?: EventBus,
  ) {
    const read = this.read();
    if (read.ok) {
      this.current = read.config;
      this.models = read.models;
      this.keys = read.keys;
    } else {
      this.current = this.corrupt(getDefaultConfig(), read.why);
    }
  }

  private read(): ReadResult {
    const defaults = getDefaultConfig();
    if (!existsSync(this.path)) return { ok: true, config: defaults, models: {}, keys: [] };
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.path, "utf8"));
    } catch (err) {
      return { ok: false, why: `not valid JSON (${(err as Error).message})` };
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return { ok: false, why: "not a JSON object" };
    // Fields added in newer versions take their defaults; unknown keys are ignored, not fatal.
    const known = Object.fromEntries(Object.entries(raw).filter(([k]) => k in defaults));
    const parsed = llamaServerConfigSchema.safeParse({ ...defaults, ...known });
    if (!parsed.success) return { ok: false, why: describeIssues(parsed.error) };
    const models = fileModelsSchema.safeParse((raw as { models?: unknown }).models ?? {});
    if (!models.success) return { ok: false, why: describeIssues(models.error) };
    const keys = namedKeysSchema.safeParse((raw as { keys?: unknown }).keys ?? []);
    if (!keys.success) return { ok: false, why: describeIssues(keys.error) };
    return { ok: true, config: parsed.data, models: models.data, keys: keys.data };
  }

  private corrupt(defaults: LlamaServerConfig, why: string): LlamaServerConfig {
    this.loadError = `Configuration file ${this.path} is invalid: ${why}. Using defaults; the file is kept until a valid configuration is saved.`;
    this.log?.error(this.loadError);
    return defaults;
  }

  get(): LlamaServerConfig {
    return { ...this.current };
  }

  /** The named API keys (hashes) of the file. */
  namedKeys(): NamedKey[] {
    return this.keys.map((k) => ({ ...k }));
  }

  /** Replaces the file's `keys` section (validated), keeping everything else; announces config.changed. */
  setKeys(keys: NamedKey[]): void {
    this.keys = namedKeysSchema.parse(keys);
    this.write(this.current);
    this.log?.info("API keys saved", { path: this.path, keys: this.keys.map((k) => k.name) });
    this.bus?.emit("config.changed", this.get());
  }

  private write(config: LlamaServerConfig): void {
    // The file's models and keys sections are kept as they are.
    const file: Record<string, unknown> = { ...config };
    if (Object.keys(this.models).length) file.models = this.models;
    if (this.keys.length) file.keys = this.keys;
    writeFileAtomic(this.path, JSON.stringify(file, null, 2) + "\n");
  }

  /** The file's per-model settings (a copy). */
  fileModels(): FileModels {
    return structuredClone(this.models);
  }

  /**
   * Re-reads the file (hot reload: file watcher, SIGHUP). A valid file replaces the running
   * configuration and announces config.changed when something changed; an invalid one keeps the
   * running configuration, and the reason is in loadError (so /api/health shows it) and the log.
   * Returns what happened.
   */
  reload(): "changed" | "unchanged" | "invalid" {
    const read = this.read();
    if (!read.ok) {
      this.loadError = `Configuration file ${this.path} is invalid: ${read.why}. Keeping the running configuration until the file is fixed.`;
      this.log?.error(this.loadError);
      return "invalid";
    }
    const wasBroken = this.loadError !== null;
    this.loadError = null;
    if (JSON.stringify(read.config) === JSON.stringify(this.current) && JSON.stringify(read.models) === JSON.stringify(this.models) && JSON.stringify(read.keys) === JSON.stringify(this.keys)) {
      if (wasBroken) this.log?.info("Configuration file is valid again", { path: this.path });
      return "unchanged";
    }
    this.current = read.config;
    this.models = read.models;
    this.keys = read.keys;
    this.log?.info("Configuration reloaded from the file", { path: this.path });
    this.bus?.emit("config.changed", this.get());
    return "changed";
  }

  /** Validated update (fields absent from `input` keep their current values), saved atomically. */
  update(input: ConfigUpdate | LlamaServerConfig): LlamaServerConfig {
    const next = llamaServerConfigSchema.parse({ ...this.current, ...input });
    this.write(next);
    this.current = next;
    this.loadError = null;
    this.log?.info("Configuration saved", { path: this.path });
    this.bus?.emit("config.changed", this.get());
    return this.get();
  }
}
