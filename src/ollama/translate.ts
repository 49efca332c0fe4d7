/**
 * Ollama requests -> llama-server requests. Pure functions: the routes validate, call these, and
 * forward the result through the proxy's relay like any /v1 request.
 *
 * Which llama-server endpoint:
 * - /api/chat, and /api/generate without `raw`: /v1/chat/completions. llama-server applies the
 *   model's own chat template (as Ollama applies its template), parses tool calls and reasoning,
 *   takes images as OpenAI image parts (with a projector), and streams SSE deltas.
 * - /api/generate with `raw`: /completion, the prompt sent as written (Ollama: "no formatting").
 * - /api/generate with `suffix`: /infill (fill-in-the-middle: prompt before, suffix after).
 * - /api/embed and /api/embeddings: /v1/embeddings.
 */
import { mapOptions } from "./options";
import type { ChatRequest, EmbedRequest, GenerateRequest, OllamaMessage, OllamaToolCall } from "./schema";

export class TranslateError extends Error {
  override name = "TranslateError";
}

export interface UpstreamRequest {
  /** llama-server path. */
  path: "/v1/chat/completions" | "/completion" | "/infill" | "/v1/embeddings";
  body: Record<string, unknown>;
  /** Which response translator reads the answer. */
  kind: "chat" | "completion" | "embed";
}

/** The MIME type llama-server's data: URL check needs (it decodes the bytes itself). */
export function imageMime(base64: string): string {
  const head = base64.slice(0, 16);
  if (head.startsWith("iVBOR")) return "image/png";
  if (head.startsWith("/9j/")) return "image/jpeg";
  if (head.startsWith("R0lGOD")) return "image/gif";
  if (head.startsWith("UklGR")) return "image/webp";
  if (head.startsWith("Qk")) return "image/bmp";
  return "image/png";
}

/** Ollama takes raw base64 or (from some clients) a full data: URL. */
function imagePart(image: string) {
  const url = image.startsWith("data:") ? image : `data:${imageMime(image)};base64,${image}`;
  return { type: "image_url", image_url: { url } };
}

function toolCallToOpenAi(call: OllamaToolCall, i: number) {
  return {
    // llama-server's templates may print ids; Ollama's history often carries none.
    id: call.id ?? `call_${i}`,
    type: "function",
    function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) },
  };
}

/** One Ollama message -> one OpenAI message (images as content parts, tool calls with string arguments). */
export function messageToOpenAi(m: OllamaMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { role: m.role };
  if (m.images && m.images.length > 0) {
    out.content = [...(m.content ? [{ type: "text", text: m.content }] : []), ...m.images.map(imagePart)];
  } else {
    out.content = m.content;
  }
  if (m.thinking) out.reasoning_content = m.thinking;
  if (m.tool_calls && m.tool_calls.length > 0) out.tool_calls = m.tool_calls.map(toolCallToOpenAi);
  if (m.role === "tool") {
    if (m.tool_name) out.name = m.tool_name;
    if (m.tool_call_id) out.tool_call_id = m.tool_call_id;
  }
  return out;
}

/** `format`: "json" -> any JSON object; a schema -> that schema (llama-server builds the grammar). */
export function responseFormat(format: ChatRequest["format"]): Record<string, unknown> | undefined {
  if (format === undefined || format === null || format === "") return undefined;
  if (format === "json") return { type: "json_object" };
  return { type: "json_schema", json_schema: { name: "response", schema: format } };
}

/**
 * `think`: true/false switch the template's thinking on or off (llama-server's enable_thinking);
 * a level is passed as OpenAI's reasoning_effort ("max" is Ollama's, "high" is the most OpenAI has).
 * Absent: the model's default, as in Ollama.
 */
export function thinkFields(think: ChatRequest["think"]): Record<string, unknown> {
  if (think === undefined || think === null) return {};
  if (typeof think === "boolean") return { chat_template_kwargs: { enable_thinking: think } };
  return { chat_template_kwargs: { enable_thinking: true }, reasoning_effort: think === "max" ? "high" : think };
}

/** Sampling fields shared by every generating request. */
function sampling(options: ChatRequest["options"]) {
  return mapOptions(options ?? undefined);
}

export function chatToUpstream(req: ChatRequest, stream: boolean): UpstreamRequest {
  const body: Record<string, unknown> = {
    messages: (req.messages ?? []).map(messageToOpenAi),
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
    ...sampling(req.options),
    ...thinkFields(req.think),
  };
  const rf = responseFormat(req.format);
  if (rf) body.response_format = rf;
  if (req.tools && req.tools.length > 0) {
    body.tools = req.tools.map((t) => ({ type: "function", function: t.function }));
  }
  return { path: "/v1/chat/completions", body, kind: "chat" };
}

export function generateToUpstream(req: GenerateRequest, stream: boolean): UpstreamRequest {
  if (req.raw && (req.template || req.system || (req.context && req.context.length > 0))) {
    // Ollama's own check, word for word.
    throw new TranslateError("raw mode does not support template, system, or context");
  }
  const opts = sampling(req.options);
  if (req.suffix) {
    if (req.images && req.images.length > 0) throw new TranslateError("images are not supported with suffix");
    return {
      path: "/infill",
      body: { input_prefix: req.prompt, input_suffix: req.suffix, prompt: "", stream, ...opts, ...schemaField(req.format) },
      kind: "completion",
    };
  }
  if (req.raw) {
    if (req.images && req.images.length > 0) {
      // llama-server's /completion wants media markers in the prompt; Ollama's raw images have none.
      throw new TranslateError("images are not supported in raw mode; send them without raw");
    }
    return { path: "/completion", body: { prompt: req.prompt, stream, ...opts, ...schemaField(req.format) }, kind: "completion" };
  }
  const messages: OllamaMessage[] = [];
  if (req.system) messages.push({ role: "system", content: req.system });
  messages.push({ role: "user", content: req.prompt, images: req.images });
  return chatToUpstream({ model: req.model, messages, format: req.format, options: req.options, think: req.think }, stream);
}

/** /completion and /infill take the schema itself as `json_schema` ({} = any JSON object). */
function schemaField(format: GenerateRequest["format"]): Record<string, unknown> {
  if (format === undefined || format === null || format === "") return {};
  return { json_schema: format === "json" ? {} : format };
}

/** Inputs of /api/embed as a list (a single string is a list of one). */
export function embedInputs(input: EmbedRequest["input"]): string[] {
  if (input === undefined || input === null) return [];
  return typeof input === "string" ? [input] : input;
}

export function embedToUpstream(inputs: string[]): UpstreamRequest {
  return { path: "/v1/embeddings", body: { input: inputs, encoding_format: "float" }, kind: "embed" };
}
