import type { EventBus } from "../events";

export interface ModelRequestStats {
  total: number;
  active: number;
  errors: number;
  totalDurationMs: number;
  ttftCount: number;
  totalTtftMs: number;
  promptTokens: number;
  completionTokens: number;
  /** Sum of generation time (ms) over requests that reported tokens, for tokens/s. */
  generationMs: number;
}

export interface RequestStatsSnapshot {
  total: number;
  active: number;
  /** ms, mean over finished requests. */
  averageResponseTime: number;
  /** errors / finished, 0..1. */
  errorRate: number;
  errors: number;
  averageTtft: number;
  promptTokens: number;
  completionTokens: number;
  /** Generated tokens per second of generation time, over all finished requests. */
  tokensPerSecond: number;
  perModel: Record<string, ModelRequestStats & { averageResponseTime: number; tokensPerSecond: number }>;
}

export interface RequestOutcome {
  status: number;
  ttftMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  /** Generation time reported by llama-server (timings.predicted_ms), for tokens/s. */
  generationMs?: number;
  error?: boolean;
  /** Why it failed, for the activity log. */
  message?: string;
  cachedTokens?: number;
  promptPerSecond?: number;
  predictedPerSecond?: number;
}

const empty = (): ModelRequestStats => ({
  total: 0, active: 0, errors: 0, totalDurationMs: 0, ttftCount: 0, totalTtftMs: 0,
  promptTokens: 0, completionTokens: 0, generationMs: 0,
});

/**
 * Request statistics: the single owner of the counters behind /api/status performance,
 * /api/monitoring requests and history. The proxy calls begin() per request and end() once.
 */
export class RequestStats {
  private all = empty();
  private models = new Map<string, ModelRequestStats>();

  constructor(private readonly bus?: EventBus) {}

  begin(modelId: string | null, path: string) {
    const started = performance.now();
    const m = modelId ? this.model(modelId) : undefined;
    this.all.active++;
    if (m) m.active++;
    let ended = false;
    return {
      end: (o: RequestOutcome) => {
        if (ended) return; // one request, one end, whatever path closes it
        ended = true;
        const durationMs = performance.now() - started;
        const error = o.error ?? o.status >= 400;
        for (const s of m ? [this.all, m] : [this.all]) {
          s.active--;
          s.total++;
          s.totalDurationMs += durationMs;
          if (error) s.errors++;
          if (o.ttftMs !== undefined) { s.ttftCount++; s.totalTtftMs += o.ttftMs; }
          s.promptTokens += o.promptTokens ?? 0;
          s.completionTokens += o.completionTokens ?? 0;
          if (o.completionTokens && o.generationMs) s.generationMs += o.generationMs;
        }
        this.bus?.emit("request.completed", {
          modelId, path, status: o.status, durationMs, ttftMs: o.ttftMs,
          promptTokens: o.promptTokens, completionTokens: o.completionTokens, error,
        });
      },
    };
  }

  /** Requests in flight for one model (routing: the least loaded host). */
  activeOf(id: string): number {
    return this.models.get(id)?.active ?? 0;
  }

  private model(id: string): ModelRequestStats {
    let m = this.models.get(id);
    if (!m) this.models.set(id, (m = empty()));
    return m;
  }

  snapshot(): RequestStatsSnapshot {
    const derive = (s: ModelRequestStats) => ({
      averageResponseTime: s.total ? Math.round(s.totalDurationMs / s.total) : 0,
      tokensPerSecond: s.generationMs ? Math.round((s.completionTokens / s.generationMs) * 1000 * 10) / 10 : 0,
    });
    const a = this.all;
    return {
      total: a.total,
      active: a.active,
      averageResponseTime: derive(a).averageResponseTime,
      errorRate: a.total ? Math.round((a.errors / a.total) * 10000) / 10000 : 0,
      errors: a.errors,
      averageTtft: a.ttftCount ? Math.round(a.totalTtftMs / a.ttftCount) : 0,
      promptTokens: a.promptTokens,
      completionTokens: a.completionTokens,
      tokensPerSecond: derive(a).tokensPerSecond,
      perModel: Object.fromEntries([...this.models].map(([id, s]) => [id, { ...s, ...derive(s) }])),
    };
  }
}
