import type { Result, Router } from "hono/router";
import { TrieRouter } from "hono/router/trie-router";

/** Longest path whose match is kept: longer ones (never the console's or the API's) are matched each time. */
const MAX_CACHED_PATH = 256;

/**
 * Hono's TrieRouter, with each (method, path)'s match kept for the next request to the same path.
 *
 * Why: the app's routes cannot use Hono's RegExpRouter (it refuses a static segment beside a
 * parameter at the same place, as in `POST /api/models/discover` and `/api/models/:id/start`), so
 * SmartRouter falls back to the trie, whose search walks every middleware pattern ("*", "/api/*")
 * and route for every request: ~15% of the CPU of an in-process GET /api/monitoring
 * (bench/RESULTS.md "#16, round five"). The paths a process sees are few (pollers, the console,
 * /v1/chat/completions), so a bounded map answers nearly all of them.
 *
 * Safe to share: Hono reads a match result (handlers and parameter indexes) and never writes to
 * it. Bounded: at most `maxEntries` paths, oldest first out, so a scan of random paths costs a
 * trie search each as before and no memory beyond the bound.
 */
export class CachingRouter<T> implements Router<T> {
  readonly name = "CachingRouter + TrieRouter";
  private readonly trie = new TrieRouter<T>();
  private readonly matches = new Map<string, Result<T>>();

  constructor(private readonly maxEntries = 1024) {}

  add(method: string, path: string, handler: T): void {
    this.matches.clear();
    this.trie.add(method, path, handler);
  }

  match(method: string, path: string): Result<T> {
    if (path.length > MAX_CACHED_PATH) return this.trie.match(method, path);
    const key = `${method} ${path}`;
    let result = this.matches.get(key);
    if (result) return result;
    result = this.trie.match(method, path);
    if (this.matches.size >= this.maxEntries) this.matches.delete(this.matches.keys().next().value!);
    this.matches.set(key, result);
    return result;
  }

  /** Paths held now (tests check the bound). */
  get size(): number {
    return this.matches.size;
  }
}
