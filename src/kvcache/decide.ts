/**
 * The KV cache's decisions, as pure functions (tested as tables in tests/unit/kvcache-decide.test.ts):
 * which slots to save, which saved file to restore for a prompt, whether a restore helped, and
 * which files go when the disk budget is exceeded. No I/O, no clock: callers pass what they know.
 */

/** What GET /slots says about one slot (tools/server/server-context.cpp `server_slot::to_json`). */
export interface SlotState {
  id: number;
  n_ctx: number;
  is_processing: boolean;
  /** Tokens the slot holds in its KV cache (`prompt.tokens.size()`); absent until its first task. */
  n_prompt_tokens?: number;
}

/** Length of the longest common prefix of two token sequences. */
export function commonPrefixLength(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * Slots worth saving before a stop: idle (a save of a busy slot is deferred by llama-server until
 * the generation ends, which a stop cannot wait for) and holding at least `minTokens`.
 */
export function slotsToSave(slots: SlotState[], minTokens: number): SlotState[] {
  return slots.filter((s) => !s.is_processing && (s.n_prompt_tokens ?? 0) >= minTokens);
}

export interface RestoreCandidate {
  id: string;
  tokens: ArrayLike<number>;
}

/**
 * The saved cache that shares the longest prefix with the request's prompt, if that prefix is at
 * least `minTokens` long. llama-server reuses exactly the common prefix of a slot's tokens and
 * the new prompt (`get_common_prefix`), so the prefix length is the work a restore saves; a cache
 * that goes on past the prompt (the previous answer, re-templated differently) is still useful.
 */
export function chooseRestore(
  candidates: RestoreCandidate[],
  prompt: ArrayLike<number>,
  minTokens: number,
): { id: string; reuse: number } | null {
  let best: { id: string; reuse: number } | null = null;
  for (const c of candidates) {
    const reuse = commonPrefixLength(c.tokens, prompt);
    if (reuse >= minTokens && (!best || reuse > best.reuse)) best = { id: c.id, reuse };
  }
  return best;
}

/**
 * A free slot to restore into: idle, not promised to another restore of ours, big enough for the
 * restored tokens (llama-server refuses "Restored prompt does not fit in the slot context"), and
 * preferably empty or holding the least (restoring overwrites what it holds).
 */
export function chooseFreeSlot(slots: SlotState[], reserved: ReadonlySet<number>, tokens: number): number | null {
  const free = slots
    .filter((s) => !s.is_processing && !reserved.has(s.id) && (s.n_ctx <= 0 || s.n_ctx >= tokens))
    .sort((a, b) => (a.n_prompt_tokens ?? 0) - (b.n_prompt_tokens ?? 0) || a.id - b.id);
  return free[0]?.id ?? null;
}

export type RestoreVerdict = "helped" | "not-helped" | "unknown";

/**
 * Did the restored prefix get used? llama-server's answer says so in `timings.cache_n` (tokens
 * taken from the cache) and `prompt_n` (tokens it processed). It always re-evaluates at least the
 * last prompt token, and SWA/hybrid models may fall back to a checkpoint before the end, so
 * "helped" means at least half of the expected prefix came from the cache. A model that ignores
 * a restore (some hybrid and sliding-window ones do, silently) shows cache_n near 0.
 */
export function restoreVerdict(expectedReuse: number, timings: { cacheN?: number; promptN?: number }): RestoreVerdict {
  if (timings.cacheN === undefined || expectedReuse <= 0) return "unknown";
  return timings.cacheN >= expectedReuse * 0.5 ? "helped" : "not-helped";
}

export interface SizedEntry {
  id: string;
  bytes: number;
  /** Epoch ms of the last save or restore (LRU order). */
  lastUsedAt: number;
}

/** Entries to delete, least recently used first, until the rest fit in `budgetBytes`. */
export function evictionsForBudget(entries: SizedEntry[], budgetBytes: number): string[] {
  let total = entries.reduce((n, e) => n + e.bytes, 0);
  const out: string[] = [];
  for (const e of [...entries].sort((a, b) => a.lastUsedAt - b.lastUsedAt || a.id.localeCompare(b.id))) {
    if (total <= budgetBytes) break;
    out.push(e.id);
    total -= e.bytes;
  }
  return out;
}

/**
 * Saved caches a new save makes redundant: the same conversation saved again after more turns.
 * An earlier save is covered when the new one shares all of it but a small tail: the slot's last
 * generated tokens are re-tokenized from the answer's text in the next prompt (and the turn's end
 * token added), so the old tail rarely survives verbatim even when nothing else changed.
 */
export function supersededBy(newTokens: ArrayLike<number>, existing: RestoreCandidate[]): string[] {
  return existing
    .filter((e) => {
      const tail = e.tokens.length - commonPrefixLength(e.tokens, newTokens);
      return tail <= Math.max(32, Math.floor(e.tokens.length * 0.1));
    })
    .map((e) => e.id);
}
