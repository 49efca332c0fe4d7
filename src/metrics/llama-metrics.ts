import type { ModelRuntimeInfo } from "../supervisor/types";
import { childAuthHeaders } from "../supervisor/child-keys";

/** Throughput and load of one running llama-server, from its own /metrics. */
export interface LlamaServerMetrics {
  modelId: string;
  /** Prompt tokens per second of prompt-processing time since the previous read. */
  promptTokensPerSecond: number;
  /** Generated tokens per second of generation time since the previous read. */
  predictedTokensPerSecond: number;
  requestsProcessing: number;
  requestsDeferred: number;
  promptTokensTotal: number;
  predictedTokensTotal: number;
  /** ISO time of the read. */
  at: string;
}

/** Unlabelled samples of a Prometheus text exposition: "name value" (labels and timestamps ignored). */
export function parsePrometheusSamples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!m || m[2]) continue; // llama-server's samples carry no labels; skip any that do
    const v = Number(m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : m[3]);
    if (!Number.isNaN(v)) out.set(m[1]!, v);
  }
  return out;
}

interface Counters { promptTokens: number; promptSeconds: number; predictedTokens: number; predictedSeconds: number }

const round1 = (n: number) => Math.round(n * 10) / 10;

/**
 * Turns two successive reads into rates. llama-server's own `*_tokens_seconds` gauges are
 * "since the previous /metrics call", so anyone else scraping the server would skew them; deltas
 * of the `_total` counters are ours alone. The first read (no previous) falls back to the gauges.
 */
export function llamaMetricsFrom(modelId: string, samples: Map<string, number>, prev: Counters | undefined): { metrics: LlamaServerMetrics; counters: Counters } {
  const g = (name: string) => samples.get(`llamacpp:${name}`) ?? 0;
  const counters: Counters = {
    promptTokens: g("prompt_tokens_total"),
    promptSeconds: g("prompt_seconds_total"),
    predictedTokens: g("tokens_predicted_total"),
    predictedSeconds: g("tokens_predicted_seconds_total"),
  };
  const rate = (dTokens: number, dSeconds: number, gauge: number) => (dSeconds > 0 && dTokens >= 0 ? dTokens / dSeconds : dSeconds === 0 ? 0 : gauge);
  // A restarted server resets its counters: negative deltas fall back to the gauge.
  const promptRate = prev
    ? rate(counters.promptTokens - prev.promptTokens, counters.promptSeconds - prev.promptSeconds, g("prompt_tokens_seconds"))
    : g("prompt_tokens_seconds");
  const predictedRate = prev
    ? rate(counters.predictedTokens - prev.predictedTokens, counters.predictedSeconds - prev.predictedSeconds, g("predicted_tokens_seconds"))
    : g("predicted_tokens_seconds");
  return {
    counters,
    metrics: {
      modelId,
      promptTokensPerSecond: round1(promptRate),
      predictedTokensPerSecond: round1(predictedRate),
      requestsProcessing: g("requests_processing"),
      requestsDeferred: g("requests_deferred"),
      promptTokensTotal: counters.promptTokens,
      predictedTokensTotal: counters.predictedTokens,
      at: new Date().toISOString(),
    },
  };
}

/**
 * Reads /metrics of every running llama-server in parallel, each bounded by a timeout, and owns
 * the previous counters per model (for rates). A server started without --metrics answers 501
 * and is simply left out.
 */
export class LlamaMetricsReader {
  private prev = new Map<string, Counters>();

  constructor(private readonly timeoutMs = 2000) {}

  async read(runtimes: ModelRuntimeInfo[]): Promise<LlamaServerMetrics[]> {
    const running = runtimes.filter((r) => r.state === "running" && r.baseUrl);
    // Forget models that stopped, so a restart does not compute a rate against stale counters.
    const live = new Set(running.map((r) => r.modelId));
    for (const id of this.prev.keys()) if (!live.has(id)) this.prev.delete(id);
    const results = await Promise.all(
      running.map(async (r) => {
        try {
          const url = `${r.baseUrl!.replace(/\/$/, "")}/metrics`;
          const res = await fetch(url, { headers: childAuthHeaders(url), signal: AbortSignal.timeout(this.timeoutMs) });
          if (!res.ok) {
            await res.body?.cancel();
            return null;
          }
          const { metrics, counters } = llamaMetricsFrom(r.modelId, parsePrometheusSamples(await res.text()), this.prev.get(r.modelId));
          this.prev.set(r.modelId, counters);
          return metrics;
        } catch {
          return null; // unreachable or slow: left out of this sample
        }
      }),
    );
    return results.filter((m): m is LlamaServerMetrics => m !== null);
  }
}
