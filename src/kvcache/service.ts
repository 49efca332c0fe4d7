import { rmSync, statSync } from "node:fs";
import type { LlamaServerConfig } from "../config/schema";
import type { ModelRow } from "../db/schema";
import type { Logger } from "../logs/logger";
import { chooseFreeSlot, chooseRestore, evictionsForBudget, restoreVerdict, slotsToSave, supersededBy, type RestoreCandidate } from "./decide";
import { settingsFingerprint, tokensHash, type CacheSettings } from "./fingerprint";
import { applyTemplate, getSlots, LlamaSlotsError, restoreSlot, saveSlot, tokenize } from "./llama-slots";
import { fileCrc32, readSlotFileTokens, SlotFileError } from "./slot-file";
import { KvCacheStore, newFileName, type KvCacheEntry } from "./store";

const MIB = 1024 * 1024;

/** Counters since start-up, for /metrics. */
export interface KvCacheCounters {
  saves: number;
  saveFailures: number;
  restores: number;
  restoreFailures: number;
  /** Restores whose answer showed the prefix reused (timings.cache_n). */
  hits: number;
  /** Restores the model ignored (cache_n far below the restored prefix). */
  misses: number;
  evictions: number;
  bytesSaved: number;
  bytesRestored: number;
}

/** One llama-server process launched with our --slot-save-path. */
interface Instance {
  fingerprint: string;
  settings: CacheSettings;
  /** Entries already restored into this process (each at most once: afterwards the slot has it). */
  restored: Set<string>;
  /** Slots we restored into and whose request has not ended (nobody else restores over them). */
  reserved: Set<number>;
  /** Serializes restores of this process (two requests must not pick the same file or slot). */
  lock: Promise<unknown>;
}

export interface KvCacheDeps {
  store: KvCacheStore;
  config: () => LlamaServerConfig;
  log: Logger;
  now?: () => number;
}

/** What the proxy forwards instead of the client's body, and what to tell us when it ends. */
export interface PreparedRequest {
  body: string;
  /** The response's timings (llama-server's own cache_n / prompt_n), once it has ended. */
  done(outcome: { cacheN?: number; promptN?: number; failed?: boolean }): void;
}

/** Request paths whose prompt we can reconstruct: chat (template + tokenize) and plain text. */
const CHAT_PATHS = new Set(["/v1/chat/completions", "/chat/completions"]);
const TEXT_PATHS = new Set(["/v1/completions", "/completions", "/completion"]);

/**
 * Keeps conversations across swaps: before a model's llama-server is stopped its long slots are
 * saved (POST /slots/{id}?action=save) into the model's folder; when a request comes back whose
 * prompt starts with a saved prefix, that file is restored into a free slot first and the request
 * is sent to that slot (id_slot). llama-server's timings in the answer tell whether it helped.
 */
export class KvCacheService {
  readonly counters: KvCacheCounters = { saves: 0, saveFailures: 0, restores: 0, restoreFailures: 0, hits: 0, misses: 0, evictions: 0, bytesSaved: 0, bytesRestored: 0 };
  private instances = new Map<string, Instance>();
  /** Background checksums of fresh saves (awaited by a restore of that file, and by tests). */
  private pending: Promise<unknown>[] = [];
  private readonly now: () => number;

  constructor(private readonly deps: KvCacheDeps) {
    this.now = deps.now ?? Date.now;
  }

  get store(): KvCacheStore {
    return this.deps.store;
  }

  /** Off globally (kvCacheDiskMiB 0), per model (settings.kvCache false), or when the user set
   *  their own --slot-save-path (their folder, not ours to fill or prune). */
  enabledFor(model: Pick<ModelRow, "settings">): boolean {
    const cfg = this.deps.config();
    if (cfg.kvCacheDiskMiB <= 0) return false;
    if (model.settings?.kvCache === false) return false;
    return !(model.settings?.extraArgs ?? []).some((a) => a === "--slot-save-path" || a.startsWith("--slot-save-path="));
  }

  /**
   * Extra llama-server arguments for a launch (the supervisor calls this right before spawning):
   * `--slot-save-path <folder>`, and the settings this process's saves will be valid for.
   */
  launchArgs(model: ModelRow, serverBinary: string): string[] {
    this.instances.delete(model.id);
    if (!this.enabledFor(model)) return [];
    const settings = cacheSettingsOf(model, this.deps.config(), serverBinary);
    this.instances.set(model.id, { fingerprint: settingsFingerprint(settings), settings, restored: new Set(), reserved: new Set(), lock: Promise.resolve() });
    return ["--slot-save-path", this.deps.store.dirOf(model.id)];
  }

  /**
   * Saves every idle slot holding at least kvCacheMinTokens, before the process goes. Bounded by
   * `signal` (the stop's grace period): a save cut short is abandoned and its file deleted, and
   * the stop proceeds. Never throws.
   */
  async beforeStop(modelId: string, baseUrl: string, signal: AbortSignal): Promise<void> {
    const inst = this.instances.get(modelId);
    this.instances.delete(modelId);
    if (!inst) return;
    const store = this.deps.store;
    const min = this.deps.config().kvCacheMinTokens;
    try {
      store.sweep(modelId); // leftovers of an earlier save cut short: only this process writes here
      const slots = slotsToSave(await getSlots(baseUrl, signal), min);
      for (const slot of slots) {
        if (signal.aborted) break;
        await this.saveOne(modelId, inst, baseUrl, slot.id, min, signal);
      }
    } catch (err) {
      if (!signal.aborted) this.deps.log.warn(`KV cache: could not read the slots of ${modelId}: ${(err as Error).message}`);
    }
    if (signal.aborted) this.deps.log.warn(`KV cache: saving ${modelId}'s slots ran out of time; stopping without the rest`);
    this.enforceBudget();
  }

  private async saveOne(modelId: string, inst: Instance, baseUrl: string, slotId: number, min: number, signal: AbortSignal): Promise<void> {
    const store = this.deps.store;
    const { id, file } = newFileName(this.now());
    const path = `${store.dirOf(modelId)}/${file}`;
    const t0 = performance.now();
    try {
      await saveSlot(baseUrl, slotId, file, signal);
      // The file is the truth: its size on disk and the tokens in its header.
      const bytes = statSync(path).size;
      const tokens = readSlotFileTokens(path);
      if (tokens.length < min) {
        rmSync(path, { force: true });
        return;
      }
      const hash = tokensHash(tokens);
      const same = store.list(modelId).filter((e) => e.fingerprint === inst.fingerprint);
      const twin = same.find((e) => e.tokensHash === hash && e.tokens === tokens.length);
      if (twin) {
        // A restored slot that did not move on: the file we have is the same; keep the old one.
        rmSync(path, { force: true });
        store.touch(twin.id, this.now(), false);
        return;
      }
      const now = this.now();
      store.add({ id, modelId, file, fingerprint: inst.fingerprint, settings: { ...inst.settings }, tokens: tokens.length, tokensHash: hash, bytes, createdAt: now, lastUsedAt: now, hits: 0 });
      for (const old of supersededBy(tokens, this.candidates(modelId, inst.fingerprint, new Set([id])))) store.remove(old);
      // The checksum is taken off the stop's clock: the file is complete (the save answered).
      this.pending.push(fileCrc32(path).then((crc) => store.setCrc(id, crc), () => {}));
      this.counters.saves++;
      this.counters.bytesSaved += bytes;
      this.deps.log.info(`KV cache: saved slot ${slotId} of ${modelId} (${tokens.length} tokens, ${(bytes / MIB).toFixed(1)} MiB) in ${Math.round(performance.now() - t0)} ms`);
    } catch (err) {
      rmSync(path, { force: true });
      this.counters.saveFailures++;
      this.deps.log.warn(`KV cache: saving slot ${slotId} of ${modelId} failed: ${signal.aborted ? "out of time" : (err as Error).message}`);
    }
  }

  /** Entries of a model valid for `fingerprint` with their tokens; damaged files are dropped. */
  private candidates(modelId: string, fingerprint: string, skip: ReadonlySet<string>): RestoreCandidate[] {
    const out: RestoreCandidate[] = [];
    for (const e of this.deps.store.list(modelId)) {
      if (e.fingerprint !== fingerprint || skip.has(e.id)) continue;
      try {
        out.push({ id: e.id, tokens: this.deps.store.tokensOf(e) });
      } catch (err) {
        this.deps.log.warn(`KV cache: dropping unreadable ${e.file} of ${modelId}: ${(err as Error).message}`);
        this.deps.store.remove(e.id);
      }
    }
    return out;
  }

  /** Least recently used files go until the folder fits kvCacheDiskMiB. */
  enforceBudget(): void {
    const budget = this.deps.config().kvCacheDiskMiB * MIB;
    const entries = this.deps.store.list();
    for (const id of evictionsForBudget(entries.map((e) => ({ id: e.id, bytes: e.bytes, lastUsedAt: e.lastUsedAt })), budget)) {
      const e = this.deps.store.remove(id);
      if (e) {
        this.counters.evictions++;
        this.deps.log.info(`KV cache: evicted ${e.file} of ${e.modelId} (${(e.bytes / MIB).toFixed(1)} MiB) to stay within ${this.deps.config().kvCacheDiskMiB} MiB`);
      }
    }
  }

  /**
   * Called by the proxy with the lease held, before forwarding: if a saved cache shares a long
   * enough prefix with this request's prompt, restores it into a free slot and returns the body
   * with `id_slot` set. Returns null (forward unchanged) in every other case, including failures:
   * a cache is an optimisation, never a reason for a request to fail.
   */
  async prepareRequest(a: { modelId: string; baseUrl: string; path: string; body: string; signal: AbortSignal }): Promise<PreparedRequest | null> {
    try {
      return await this.prepare(a);
    } catch (err) {
      if (!a.signal.aborted) this.deps.log.warn(`KV cache: no restore for ${a.modelId}: ${(err as Error).message}`);
      return null;
    }
  }

  private async prepare(a: { modelId: string; baseUrl: string; path: string; body: string; signal: AbortSignal }): Promise<PreparedRequest | null> {
    const inst = this.instances.get(a.modelId);
    if (!inst) return null;
    const kind = CHAT_PATHS.has(a.path) ? "chat" : TEXT_PATHS.has(a.path) ? "text" : null;
    if (!kind || this.deps.config().kvCacheDiskMiB <= 0) return null;
    if (!this.deps.store.isRestorable(a.modelId, inst.fingerprint)) return null;
    // Cheap check first: nothing saved for these settings that this process has not restored.
    if (!this.deps.store.some((e) => e.modelId === a.modelId && e.fingerprint === inst.fingerprint && !inst.restored.has(e.id))) return null;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(a.body);
    } catch {
      return null;
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) return null;
    // The client chose a slot, or asked for no cache: theirs to decide.
    if (body.id_slot !== undefined || body.cache_prompt === false) return null;
    const run = inst.lock.then(() => this.restoreFor(a, inst, kind, body));
    inst.lock = run.catch(() => {});
    return run;
  }

  private async restoreFor(
    a: { modelId: string; baseUrl: string; signal: AbortSignal },
    inst: Instance,
    kind: "chat" | "text",
    body: Record<string, unknown>,
  ): Promise<PreparedRequest | null> {
    const store = this.deps.store;
    const min = this.deps.config().kvCacheMinTokens;
    // Bounded by the client (it may leave) and by the load timeout (the user's patience setting).
    const signal = AbortSignal.any([a.signal, AbortSignal.timeout(this.deps.config().loadTimeoutSeconds * 1000)]);
    const candidates = this.candidates(a.modelId, inst.fingerprint, inst.restored);
    if (!candidates.length) return null;
    const prompt = await this.promptTokens(a.baseUrl, kind, body, signal);
    if (!prompt) return null;
    const choice = chooseRestore(candidates, prompt, min);
    if (!choice) return null;
    const entry = store.get(choice.id)!;
    await this.settled();
    if (!(await this.intact(entry, signal))) return null;
    const slot = chooseFreeSlot(await getSlots(a.baseUrl, signal), inst.reserved, entry.tokens);
    if (slot === null) return null;
    inst.restored.add(entry.id); // one attempt per process, whatever happens next
    let restored: number;
    try {
      const t0 = performance.now();
      const ans = await restoreSlot(a.baseUrl, slot, entry.file, signal);
      restored = ans.n_restored;
      this.counters.restores++;
      this.counters.bytesRestored += ans.n_read ?? entry.bytes;
      this.deps.log.info(`KV cache: restored ${entry.tokens} tokens of ${a.modelId} into slot ${slot} in ${Math.round(performance.now() - t0)} ms (prefix ${choice.reuse} of the prompt's ${prompt.length})`);
    } catch (err) {
      this.counters.restoreFailures++;
      if (err instanceof LlamaSlotsError && err.status === 400) {
        // llama-server refused the file (damaged, another model's shapes, too long): drop it.
        this.deps.log.warn(`KV cache: ${a.modelId} refused ${entry.file} (${err.message}); file dropped`);
        store.remove(entry.id);
      } else if (!signal.aborted) {
        this.deps.log.warn(`KV cache: restoring ${entry.file} into ${a.modelId} failed: ${(err as Error).message}`);
      }
      return null;
    }
    inst.reserved.add(slot);
    const expected = Math.min(choice.reuse, restored);
    let settled = false;
    return {
      body: JSON.stringify({ ...body, id_slot: slot }),
      done: (o) => {
        if (settled) return;
        settled = true;
        inst.reserved.delete(slot);
        if (o.failed) return;
        const verdict = restoreVerdict(expected, { cacheN: o.cacheN, promptN: o.promptN });
        if (verdict === "helped") {
          this.counters.hits++;
          store.touch(entry.id, this.now(), true);
        } else if (verdict === "not-helped") {
          // The model took the file and reused (almost) none of it: hybrid and sliding-window
          // models can do that silently. Saving for these settings only costs disk and time.
          this.counters.misses++;
          const reason = `restored ${restored} tokens but the answer reused ${o.cacheN} (prefix ${expected})`;
          this.deps.log.warn(`KV cache: restore into ${a.modelId} did not help: ${reason}; file dropped and these settings marked not restorable`);
          store.remove(entry.id);
          store.markUnrestorable(a.modelId, inst.fingerprint, reason, this.now());
        }
      },
    };
  }

  /** Waits for the background checksums of fresh saves. */
  async settled(): Promise<void> {
    const all = this.pending.splice(0);
    await Promise.all(all);
  }

  /** The file is as it was saved (size and CRC-32); a damaged one is dropped. */
  private async intact(entry: KvCacheEntry, signal: AbortSignal): Promise<boolean> {
    const path = this.deps.store.pathOf(entry);
    let why: string | null = null;
    try {
      if (statSync(path).size !== entry.bytes) why = "its size changed";
      else {
        const crc = await fileCrc32(path, signal);
        if (entry.crc32 === null) this.deps.store.setCrc(entry.id, crc);
        else if (crc !== entry.crc32) why = "its checksum does not match";
      }
    } catch (err) {
      if (signal.aborted) throw err;
      why = `it cannot be read (${(err as Error).message})`;
    }
    if (!why) return true;
    this.counters.restoreFailures++;
    this.deps.log.warn(`KV cache: ${entry.file} of ${entry.modelId} is damaged (${why}); file dropped`);
    this.deps.store.remove(entry.id);
    return false;
  }

  /** The prompt tokens the model will see for this request, from the model itself. */
  private async promptTokens(baseUrl: string, kind: "chat" | "text", body: Record<string, unknown>, signal: AbortSignal): Promise<ArrayLike<number> | null> {
    if (kind === "chat") {
      if (!Array.isArray(body.messages)) return null;
      const { stream: _s, stream_options: _o, ...rest } = body;
      return tokenize(baseUrl, await applyTemplate(baseUrl, rest, signal), signal);
    }
    const p = body.prompt;
    if (typeof p === "string") return tokenize(baseUrl, p, signal);
    if (Array.isArray(p) && p.length > 0 && p.every((t) => Number.isInteger(t))) return p as number[];
    return null; // several prompts, or multimodal: not ours to guess
  }

  // ---------------------------------------------------------------- what the API and console show

  view(modelId: string, model?: Pick<ModelRow, "settings">) {
    const inst = this.instances.get(modelId);
    const entries = this.deps.store.list(modelId);
    const now = this.now();
    return {
      modelId,
      enabled: model ? this.enabledFor(model) : false,
      minTokens: this.deps.config().kvCacheMinTokens,
      diskBudgetMiB: this.deps.config().kvCacheDiskMiB,
      totalBytes: entries.reduce((n, e) => n + e.bytes, 0),
      unrestorable: this.deps.store.unrestorableOf(modelId).map((u) => ({ fingerprint: u.fingerprint, reason: u.reason, at: new Date(u.at).toISOString() })),
      entries: entries.map((e) => entryView(e, now, inst?.fingerprint)),
    };
  }

  deleteAll(modelId: string): number {
    return this.deps.store.clearModel(modelId);
  }

  deleteEntry(modelId: string, entryId: string): boolean {
    const e = this.deps.store.get(entryId);
    if (!e || e.modelId !== modelId) return false;
    this.deps.store.remove(entryId);
    return true;
  }

  /** The settings fingerprint of the model's running process (undefined when not launched by us). */
  runningFingerprint(modelId: string): string | undefined {
    return this.instances.get(modelId)?.fingerprint;
  }

  /** Gauges for /metrics. */
  totals(): { files: number; bytes: number } {
    const all = this.deps.store.list();
    return { files: all.length, bytes: all.reduce((n, e) => n + e.bytes, 0) };
  }
}

/** One saved cache as GET /api/models/:id/kv-cache lists it. */
export type KvCacheEntryView = ReturnType<typeof entryView>;

function entryView(e: KvCacheEntry, now: number, runningFingerprint: string | undefined) {
  return {
    id: e.id,
    tokens: e.tokens,
    sizeBytes: e.bytes,
    createdAt: new Date(e.createdAt).toISOString(),
    lastUsedAt: new Date(e.lastUsedAt).toISOString(),
    ageSeconds: Math.max(0, Math.round((now - e.createdAt) / 1000)),
    hits: e.hits,
    fingerprint: e.fingerprint,
    /** Valid for the settings the model runs (or last ran) with; null when it is not running. */
    matchesRunning: runningFingerprint === undefined ? null : runningFingerprint === e.fingerprint,
  };
}

/** The settings a launch of `model` runs with, as far as they decide what a cache holds. */
export function cacheSettingsOf(model: Pick<ModelRow, "path" | "mmprojPath" | "settings">, cfg: Pick<LlamaServerConfig, "ctx_size">, serverBinary: string): CacheSettings {
  const stat = (p: string) => {
    try {
      const s = statSync(p);
      return { size: s.size, mtimeMs: s.mtimeMs };
    } catch {
      return { size: -1, mtimeMs: 0 };
    }
  };
  const m = stat(model.path);
  const b = stat(serverBinary);
  return {
    modelPath: model.path,
    modelSize: m.size,
    modelMtimeMs: m.mtimeMs,
    mmprojPath: model.mmprojPath ?? null,
    ctxSize: model.settings?.ctxSize ?? cfg.ctx_size,
    extraArgs: [...(model.settings?.extraArgs ?? [])],
    serverPath: serverBinary,
    serverSize: b.size,
    serverMtimeMs: b.mtimeMs,
  };
}

export { SlotFileError };
