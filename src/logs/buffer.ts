import type { EventBus } from "../events";
import { LEVEL_RANK, type LogEntry, type LogLevel } from "./types";

export interface LogQuery {
  /** Most verbose level to include ("warn" gives error + warn). */
  level?: LogLevel;
  /** Exact source, or a prefix ending in ":" / "*" ("llama-server:*" = every model). */
  source?: string;
  /** Only entries after this ISO time. */
  since?: string;
  /** Only entries whose numeric id is greater than this (for incremental tails). */
  afterId?: number;
  /** Case-insensitive substring of the message. */
  q?: string;
  /** Newest N entries (after filtering), returned oldest first. */
  limit?: number;
}

/**
 * Bounded in-memory ring buffer of LogEntry: the single owner of log history. Every line from us
 * and from each llama-server goes through append(), which also emits a "log" event for live tails.
 */
export class LogBuffer {
  private entries: LogEntry[] = [];
  private start = 0; // index of the oldest entry once the ring is full
  private nextId = 1;

  constructor(
    private readonly capacity = 5000,
    private readonly bus?: EventBus,
  ) {}

  append(level: LogLevel, source: string, message: string, metadata?: Record<string, unknown>): LogEntry {
    const entry: LogEntry = {
      id: String(this.nextId++),
      timestamp: new Date().toISOString(),
      level,
      source,
      message,
      ...(metadata ? { metadata } : {}),
    };
    if (this.entries.length < this.capacity) this.entries.push(entry);
    else {
      this.entries[this.start] = entry;
      this.start = (this.start + 1) % this.capacity;
    }
    this.bus?.emit("log", entry);
    return entry;
  }

  /** All entries, oldest first. */
  all(): LogEntry[] {
    return this.start === 0 ? this.entries.slice() : [...this.entries.slice(this.start), ...this.entries.slice(0, this.start)];
  }

  get size(): number {
    return this.entries.length;
  }

  /** The id the next entry will get, minus one: the newest id so far (0 when empty). */
  get lastId(): number {
    return this.nextId - 1;
  }

  query(query: LogQuery = {}): LogEntry[] {
    const maxRank = query.level ? LEVEL_RANK[query.level] : 3;
    const sinceMs = query.since ? Date.parse(query.since) : undefined;
    const needle = query.q?.toLowerCase();
    const src = query.source;
    const prefix = src && (src.endsWith("*") ? src.slice(0, -1) : src.endsWith(":") ? src : undefined);
    const out = this.all().filter((e) => {
      if (LEVEL_RANK[e.level] > maxRank) return false;
      if (src) {
        if (prefix !== undefined ? !e.source.startsWith(prefix) : e.source !== src) return false;
      }
      if (query.afterId !== undefined && Number(e.id) <= query.afterId) return false;
      if (sinceMs !== undefined && Date.parse(e.timestamp) <= sinceMs) return false;
      if (needle && !e.message.toLowerCase().includes(needle)) return false;
      return true;
    });
    return query.limit !== undefined && out.length > query.limit ? out.slice(out.length - query.limit) : out;
  }

  /** Distinct sources seen, for filter menus. */
  sources(): string[] {
    return [...new Set(this.entries.map((e) => e.source))].sort();
  }
}
