/**
 * Hot reload of llama-server-config.json: the file is watched (and SIGHUP calls reload()). A
 * valid change is in effect at once for everything read per use (limits, timeouts: every reader
 * calls config.get()); its `models` section is applied to the registry; and a running model
 * whose launch arguments changed (global ctx_size/serverPath/..., or its own settings) restarts
 * through the lifecycle owner's restart(id, {whenIdle: true}), i.e. at its next moment with
 * nothing in flight or queued. Other models keep running. An invalid file keeps the running
 * configuration (ConfigStore.reload reports it in loadError, /api/health and the log).
 */
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import type { ModelRow } from "../db/schema";
import type { Services } from "../services";
import { buildServerArgs } from "../supervisor/args";

type Deps = Pick<Services, "config" | "registry" | "pool" | "supervisor" | "log" | "bus">;

/** What a model would be launched with now, minus port and placement: equal means no restart needed. */
export function launchFingerprint(config: ReturnType<Services["config"]["get"]>, row: ModelRow): string {
  let args: string[];
  try {
    args = buildServerArgs(config, { id: row.id, path: row.path, mmprojPath: row.mmprojPath, settings: row.settings ?? {} }, "127.0.0.1", 0);
  } catch (err) {
    args = [`invalid: ${(err as Error).message}`];
  }
  return JSON.stringify([config.serverPath, ...args]);
}

export class ConfigReloader {
  /** Fingerprint of each running model's launch, taken when it started running. */
  private launched = new Map<string, string>();
  private restartPending = new Set<string>();
  private watcher: FSWatcher | null = null;
  private debounce: ReturnType<typeof setTimeout> | null = null;
  private offs: (() => void)[] = [];

  constructor(
    private readonly s: Deps,
    private readonly debounceMs = 200,
  ) {}

  /** Applies the file's model section, starts watching the file. */
  start(): void {
    this.applyFileModels();
    for (const rt of this.s.supervisor.runtimes()) if (rt.state === "running") this.snapshot(rt.modelId);
    this.offs.push(
      this.s.bus.on("model.status", (e) => {
        if (e.status === "running") {
          this.restartPending.delete(e.modelId);
          this.snapshot(e.modelId);
        } else if (e.status === "stopped") this.launched.delete(e.modelId);
      }),
      this.s.bus.on("config.changed", () => {
        this.applyFileModels();
        this.restartChanged();
      }),
    );
    try {
      // The directory, not the file: saving replaces the file (rename), which ends a watch on it.
      const file = basename(this.s.config.path);
      this.watcher = watch(dirname(this.s.config.path), (_event, name) => {
        if (name !== file) return;
        if (this.debounce) clearTimeout(this.debounce);
        // Editors write in several steps; read once they are done.
        this.debounce = setTimeout(() => this.reload(), this.debounceMs);
      });
      this.watcher.on("error", (err) => this.s.log.warn(`Watching ${this.s.config.path} stopped: ${err.message}; SIGHUP still reloads it`));
    } catch (err) {
      this.s.log.warn(`Cannot watch ${this.s.config.path} (${(err as Error).message}); SIGHUP reloads it`);
    }
  }

  /** Re-reads the file now (SIGHUP, the watcher, tests). */
  reload(): ReturnType<Services["config"]["reload"]> {
    return this.s.config.reload();
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.debounce) clearTimeout(this.debounce);
    for (const off of this.offs.splice(0)) off();
  }

  private snapshot(id: string): void {
    const row = this.s.registry.get(id);
    if (row) this.launched.set(id, launchFingerprint(this.s.config.get(), row));
  }

  /** The file's `models` section wins over what the registry holds for those settings. */
  private applyFileModels(): void {
    for (const [id, settings] of Object.entries(this.s.config.fileModels())) {
      const row = this.s.registry.get(id);
      if (!row) {
        this.s.log.warn(`Configuration file: models.${id} names no registered model; ignored`);
        continue;
      }
      const next = { ...row.settings, ...settings };
      if (JSON.stringify(next) !== JSON.stringify(row.settings)) {
        this.s.registry.update(id, { settings: next });
        this.s.log.info(`Settings of ${id} updated from the configuration file`, { settings });
      }
    }
  }

  /** Running models whose launch arguments differ from what they were started with restart when idle. */
  private restartChanged(): void {
    const config = this.s.config.get();
    for (const rt of this.s.supervisor.runtimes()) {
      if (rt.state !== "running" || this.restartPending.has(rt.modelId)) continue;
      const before = this.launched.get(rt.modelId);
      const row = this.s.registry.get(rt.modelId);
      if (!before || !row || launchFingerprint(config, row) === before) continue;
      this.restartPending.add(rt.modelId);
      this.s.log.info(`Launch settings of ${rt.modelId} changed: it restarts when it is next idle`);
      this.s.pool.restart(rt.modelId, { whenIdle: true }).catch((err) => {
        this.restartPending.delete(rt.modelId);
        this.s.log.warn(`Restarting ${rt.modelId} after a configuration change failed: ${(err as Error).message}`);
      });
    }
  }
}
