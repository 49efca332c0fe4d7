import type { LogEntry } from "./logs/types";
import type { LlamaServerConfig } from "./config/schema";

/** Every event the services announce, with its payload. Add new ones here so listeners stay typed. */
export interface AppEvents {
  /** A log line was appended to the ring buffer. */
  log: LogEntry;
  /** The llama-server config was saved. */
  "config.changed": LlamaServerConfig;
  /** A model's runtime status changed (supervisor). */
  "model.status": {
    modelId: string;
    /** The API status (running/loading/stopped/error). */
    status: string;
    previous: string;
    /** The supervisor's internal state (adds "stopping"). */
    state?: string;
    detail?: string;
    at: string;
  };
  /** Models were added, removed or edited in the registry (not status changes). */
  "models.changed": { reason: string; ids: string[] };
  /** One proxied request finished (proxy statistics). */
  "request.completed": {
    modelId: string | null;
    path: string;
    status: number;
    durationMs: number;
    ttftMs?: number;
    promptTokens?: number;
    completionTokens?: number;
    error: boolean;
  };
  /** The live request queue changed (src/activity/tracker.ts): a request arrived, got a slot, ended or was cancelled. */
  "requests.changed": { reason: "begin" | "running" | "end" | "cancel"; id: string; model: string };
  /** Finished requests were written to the activity log (one event per batch). */
  "activity.recorded": { entries: import("./activity/log").ActivityEntry[] };
  /** llama-server reported what it allocated for a model (load-time buffer lines or its breakdown table). */
  "model.memory": { modelId: string; settingsKey?: string; devices: import("./db/schema").MeasuredDevice[]; totalBytes: number; at: string };
  /** The metrics collector took a sample. */
  "metrics.sample": import("./metrics/types").SystemMetrics;
}

type Listener<T> = (payload: T) => void;

/**
 * A small synchronous typed event bus. Listeners run in emit order; one that throws is reported
 * to the console and does not stop the others (a broken subscriber must not break the emitter).
 */
export class EventBus {
  private listeners = new Map<keyof AppEvents, Set<Listener<any>>>();

  on<K extends keyof AppEvents>(event: K, listener: Listener<AppEvents[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set!.delete(listener);
  }

  emit<K extends keyof AppEvents>(event: K, payload: AppEvents[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (err) {
        console.error(`event listener for ${String(event)} failed:`, err);
      }
    }
  }

  listenerCount(event: keyof AppEvents): number {
    return this.listeners.get(event)?.size ?? 0;
  }
}
