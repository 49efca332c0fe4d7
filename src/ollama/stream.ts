/**
 * llama-server answers -> Ollama answers. A translator takes llama-server's SSE events one at a
 * time (OpenAI chat chunks from /v1/chat/completions, or native /completion events) and returns
 * the Ollama objects to write for each: one NDJSON line per token delta, the moment it arrives,
 * then a final `done: true` line with the statistics (durations in nanoseconds, from
 * llama-server's `timings`). Non-streamed answers go through the same translator, so both paths
 * report the same fields.
 */
import { msToNs } from "./duration";

export type OllamaEndpoint = "chat" | "generate";

/** What the route knows about the request's timing (performance.now() milliseconds). */
export interface RequestClock {
  startedAt: number;
  /** Time spent waiting for the model (load and queue), known once the lease is granted. */
  loadMs(): number;
  now(): number;
}

export interface OllamaMetrics {
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
}

interface ToolCallDraft {
  id?: string;
  name: string;
  arguments: string;
}

/** OpenAI finish_reason / llama-server stop_type -> Ollama's done_reason. */
export function doneReason(reason: unknown): string {
  switch (reason) {
    case "length":
    case "limit":
      return "length";
    case "stop":
    case "eos":
    case "word":
    case "tool_calls":
    case "function_call":
      return "stop";
    default:
      return typeof reason === "string" && reason ? reason : "stop";
  }
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

function parseArguments(text: string): Record<string, unknown> {
  if (!text.trim()) return {};
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) ? v : { value: v };
  } catch {
    // A model that wrote broken JSON: keep what it wrote rather than dropping the call.
    return { arguments: text };
  }
}

/** Message text from an llama-server/OpenAI error body: `{error:{message}}`, `{error:"..."}` or text. */
export function upstreamErrorMessage(body: unknown, fallback: string): string {
  if (body && typeof body === "object") {
    const e = (body as { error?: unknown }).error;
    if (typeof e === "string" && e) return e;
    if (e && typeof e === "object" && typeof (e as { message?: unknown }).message === "string") return (e as { message: string }).message;
    if (typeof (body as { message?: unknown }).message === "string") return (body as { message: string }).message;
  }
  return fallback;
}

export class OllamaTranslator {
  private content = "";
  private thinking = "";
  private tools = new Map<number, ToolCallDraft>();
  private toolsSent = false;
  private reason: string | undefined;
  private promptCount: number | undefined;
  private evalCount: number | undefined;
  private promptMs: number | undefined;
  private evalMs: number | undefined;
  private finished = false;

  constructor(
    private readonly endpoint: OllamaEndpoint,
    /** The model name as the client sent it (Ollama echoes it). */
    private readonly model: string,
    private readonly clock: RequestClock,
    /** Keep the text for a non-streamed answer (a stream sends it and forgets it). */
    private readonly accumulate = false,
  ) {}

  get done(): boolean {
    return this.finished;
  }

  private base() {
    return { model: this.model, created_at: new Date().toISOString() };
  }

  private delta(content: string, thinking: string, toolCalls?: unknown[]): Record<string, unknown> {
    if (this.endpoint === "chat") {
      const message: Record<string, unknown> = { role: "assistant", content };
      if (thinking) message.thinking = thinking;
      if (toolCalls) message.tool_calls = toolCalls;
      return { ...this.base(), message, done: false };
    }
    const out: Record<string, unknown> = { ...this.base(), response: content, done: false };
    if (thinking) out.thinking = thinking;
    if (toolCalls) out.tool_calls = toolCalls;
    return out;
  }

  private readTimings(ev: Record<string, unknown>): void {
    const usage = ev.usage as Record<string, unknown> | undefined;
    if (usage && typeof usage === "object") {
      this.promptCount = num(usage.prompt_tokens) ?? this.promptCount;
      this.evalCount = num(usage.completion_tokens) ?? this.evalCount;
    }
    const t = ev.timings as Record<string, unknown> | undefined;
    if (t && typeof t === "object") {
      this.promptMs = num(t.prompt_ms) ?? this.promptMs;
      this.evalMs = num(t.predicted_ms) ?? this.evalMs;
      const promptN = num(t.prompt_n);
      // Ollama counts the whole prompt; llama-server's prompt_n leaves out the cached part.
      if (this.promptCount === undefined && promptN !== undefined) this.promptCount = promptN + (num(t.cache_n) ?? 0);
      this.evalCount ??= num(t.predicted_n);
    }
  }

  private toolCalls(): unknown[] | undefined {
    if (this.tools.size === 0) return undefined;
    return [...this.tools.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, t]) => ({ ...(t.id ? { id: t.id } : {}), function: { index, name: t.name, arguments: parseArguments(t.arguments) } }));
  }

  /** One SSE event's JSON -> the Ollama objects it yields (often one, sometimes none). */
  push(ev: unknown): Record<string, unknown>[] {
    if (this.finished || !ev || typeof ev !== "object") return [];
    const e = ev as Record<string, unknown>;
    if (e.error !== undefined) {
      this.finished = true;
      return [{ error: upstreamErrorMessage(e, "llama-server reported an error") }];
    }
    this.readTimings(e);
    const out: Record<string, unknown>[] = [];
    if (Array.isArray(e.choices)) {
      // OpenAI chat chunk (or a whole chat.completion for stream:false).
      const choice = e.choices[0] as Record<string, unknown> | undefined;
      if (choice) {
        const d = (choice.delta ?? choice.message) as Record<string, unknown> | undefined;
        const content = typeof d?.content === "string" ? d.content : "";
        const thinking = typeof d?.reasoning_content === "string" ? d.reasoning_content : "";
        if (Array.isArray(d?.tool_calls)) {
          for (const [i, raw] of (d.tool_calls as Record<string, unknown>[]).entries()) {
            const index = num(raw.index) ?? i;
            const fn = (raw.function ?? {}) as Record<string, unknown>;
            const draft = this.tools.get(index) ?? { name: "", arguments: "" };
            if (typeof raw.id === "string" && raw.id) draft.id = raw.id;
            if (typeof fn.name === "string") draft.name += fn.name;
            if (typeof fn.arguments === "string") draft.arguments += fn.arguments;
            else if (fn.arguments && typeof fn.arguments === "object") draft.arguments = JSON.stringify(fn.arguments);
            this.tools.set(index, draft);
          }
        }
        if (content || thinking) {
          if (this.accumulate) {
            this.content += content;
            this.thinking += thinking;
          } else out.push(this.delta(content, thinking));
        }
        if (choice.finish_reason) {
          this.reason = doneReason(choice.finish_reason);
          // Ollama sends tool calls whole, not as argument fragments: once they are complete.
          const calls = this.toolCalls();
          if (calls && !this.accumulate && !this.toolsSent) {
            this.toolsSent = true;
            out.push(this.delta("", "", calls));
          }
        }
      }
      return out;
    }
    if (typeof e.content === "string" || e.stop !== undefined) {
      // Native /completion or /infill event.
      const content = typeof e.content === "string" ? e.content : "";
      if (content) {
        if (this.accumulate) this.content += content;
        else out.push(this.delta(content, ""));
      }
      if (e.stop === true) {
        this.reason = doneReason(e.stop_type);
        if (this.promptCount === undefined) this.promptCount = num(e.tokens_evaluated);
        this.evalCount ??= num(e.tokens_predicted);
      }
    }
    return out;
  }

  metrics(): OllamaMetrics {
    const m: OllamaMetrics = {};
    // Go's omitempty: zero values are left out, as Ollama does.
    const set = (k: keyof OllamaMetrics, v: number | undefined) => {
      if (v !== undefined && v > 0) m[k] = Math.round(v);
    };
    set("total_duration", msToNs(this.clock.now() - this.clock.startedAt));
    set("load_duration", msToNs(this.clock.loadMs()));
    set("prompt_eval_count", this.promptCount);
    set("prompt_eval_duration", this.promptMs === undefined ? undefined : msToNs(this.promptMs));
    set("eval_count", this.evalCount);
    set("eval_duration", this.evalMs === undefined ? undefined : msToNs(this.evalMs));
    return m;
  }

  /** The final object: `done: true` with done_reason and statistics (and the whole text when accumulating). */
  finish(): Record<string, unknown> {
    this.finished = true;
    const calls = this.accumulate || !this.toolsSent ? this.toolCalls() : undefined;
    const head = this.endpoint === "chat"
      ? {
          ...this.base(),
          message: {
            role: "assistant",
            content: this.content,
            ...(this.thinking ? { thinking: this.thinking } : {}),
            ...(calls ? { tool_calls: calls } : {}),
          },
        }
      : {
          ...this.base(),
          response: this.content,
          ...(this.thinking ? { thinking: this.thinking } : {}),
          ...(calls ? { tool_calls: calls } : {}),
        };
    return { ...head, done: true, done_reason: this.reason ?? "stop", ...this.metrics() };
  }
}

const encoder = new TextEncoder();
const line = (obj: unknown) => encoder.encode(JSON.stringify(obj) + "\n");

/**
 * Splits an SSE byte stream into the payloads of its `data:` fields, incrementally. Comments
 * (`: loading ...`, sent by the proxy while a model loads) and other fields are skipped.
 */
export class SseDataParser {
  private buffer = "";
  private readonly decoder = new TextDecoder();

  /** Feeds bytes; returns the data payloads of every event completed by them. */
  push(chunk: Uint8Array): string[] {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    return this.drain(false);
  }

  /** End of stream: a last event without its blank line still counts. */
  end(): string[] {
    this.buffer += this.decoder.decode();
    return this.drain(true);
  }

  private drain(final: boolean): string[] {
    const out: string[] = [];
    for (;;) {
      const m = /\r?\n\r?\n/.exec(this.buffer);
      let block: string;
      if (m) {
        block = this.buffer.slice(0, m.index);
        this.buffer = this.buffer.slice(m.index + m[0].length);
      } else if (final && this.buffer.trim()) {
        block = this.buffer;
        this.buffer = "";
      } else break;
      const data: string[] = [];
      for (const l of block.split(/\r?\n/)) {
        if (l.startsWith("data:")) data.push(l.slice(l.startsWith("data: ") ? 6 : 5));
      }
      if (data.length) out.push(data.join("\n"));
    }
    return out;
  }
}

/**
 * The relay's SSE body -> Ollama NDJSON, one line out per token event in, written as soon as it
 * is read (no batching: the first line leaves with the first token). Cancelling the result
 * cancels the SSE body, which aborts the upstream request (the relay's passThrough does that).
 */
export function sseToNdjson(body: ReadableStream<Uint8Array>, translator: OllamaTranslator): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const parser = new SseDataParser();
  let closed = false;

  let written = 0;
  const write = (controller: ReadableStreamDefaultController<Uint8Array>, obj: unknown) => {
    written++;
    controller.enqueue(line(obj));
  };
  /** Writes the lines of these payloads; true once the answer is complete. */
  const handle = (payloads: string[], controller: ReadableStreamDefaultController<Uint8Array>): boolean => {
    for (const p of payloads) {
      if (translator.done) return true;
      if (p.trim() === "[DONE]") {
        write(controller, translator.finish());
        return true;
      }
      let ev: unknown;
      try {
        ev = JSON.parse(p);
      } catch {
        continue; // not an event we know: llama-server sends only JSON and [DONE]
      }
      for (const obj of translator.push(ev)) write(controller, obj);
      if (translator.done) return true;
    }
    return false;
  };

  const close = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (closed) return;
    closed = true;
    controller.close();
    // The answer is complete ([DONE] or an error event) but the SSE body may not have ended yet:
    // read it to its end instead of cancelling it, so the relay records a finished request, not
    // a client that went away (a cancel is what tells it "client disconnected").
    void (async () => {
      try {
        while (!(await reader.read()).done) {
          // after [DONE] llama-server sends nothing more
        }
      } catch {
        // the relay has recorded the failure itself
      }
    })();
  };

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        // Read until at least one line is out (or the stream ends), so each pull yields output.
        for (;;) {
          let r: Awaited<ReturnType<typeof reader.read>>;
          try {
            r = await reader.read();
          } catch (err) {
            if (!translator.done) write(controller, { error: `llama-server stream failed: ${(err as Error).message}` });
            return close(controller);
          }
          if (r.done) {
            handle(parser.end(), controller);
            // A stream that ended without [DONE] (native /completion never sends one) still
            // ends with Ollama's done line, or clients wait for it ("Did not receive done").
            if (!translator.done) write(controller, translator.finish());
            return close(controller);
          }
          const before = written;
          if (handle(parser.push(r.value), controller)) return close(controller);
          if (written !== before) return;
        }
      },
      cancel(reason) {
        closed = true;
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
