/**
 * Ollama's request bodies (api/types.go), validated with zod. Like Go's json decoder, unknown
 * fields are ignored (clients send fields of newer Ollama versions); known fields must have
 * their type. Every list is bounded (the body limit bounds the rest).
 */
import { z } from "../zod";

export const LIMITS = {
  messages: 10_000,
  imagesPerMessage: 32,
  tools: 256,
  toolCalls: 128,
  embedInputs: 2_048,
  nameLength: 512,
} as const;

const name = z.string().check(z.maxLength(LIMITS.nameLength));
const keepAlive = z.nullish(z.union([z.number(), z.string().check(z.maxLength(64))]));
const options = z.nullish(z.record(z.string(), z.unknown()));
/** "json", "" (none) or a JSON schema object. */
const format = z.nullish(z.union([z.literal(""), z.literal("json"), z.record(z.string(), z.unknown())]));
const think = z.nullish(z.union([z.boolean(), z.enum(["low", "medium", "high", "max"])]));
const images = z.nullish(z.array(z.string()).check(z.maxLength(LIMITS.imagesPerMessage)));

export const toolCallSchema = z.object({
  id: z.optional(z.string()),
  function: z.object({
    index: z.optional(z.int()),
    name: z.string(),
    arguments: z._default(z.record(z.string(), z.unknown()), {}),
  }),
});
export type OllamaToolCall = z.infer<typeof toolCallSchema>;

export const messageSchema = z.object({
  role: z.string().check(z.minLength(1), z.maxLength(64)),
  content: z._default(z.string(), ""),
  thinking: z.optional(z.string()),
  images,
  tool_calls: z.nullish(z.array(toolCallSchema).check(z.maxLength(LIMITS.toolCalls))),
  tool_name: z.optional(z.string()),
  tool_call_id: z.optional(z.string()),
});
export type OllamaMessage = z.infer<typeof messageSchema>;

const toolSchema = z.object({
  type: z._default(z.string(), "function"),
  function: z.object({
    name: z.string().check(z.minLength(1)),
    description: z.optional(z.string()),
    parameters: z.optional(z.record(z.string(), z.unknown())),
  }),
});

export const chatRequestSchema = z.object({
  model: z._default(name, ""),
  messages: z.nullish(z.array(messageSchema).check(z.maxLength(LIMITS.messages))),
  stream: z.nullish(z.boolean()),
  format,
  keep_alive: keepAlive,
  tools: z.nullish(z.array(toolSchema).check(z.maxLength(LIMITS.tools))),
  options,
  think,
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

export const generateRequestSchema = z.object({
  model: z._default(name, ""),
  prompt: z._default(z.string(), ""),
  suffix: z._default(z.string(), ""),
  system: z._default(z.string(), ""),
  template: z._default(z.string(), ""),
  context: z.nullish(z.array(z.number())),
  stream: z.nullish(z.boolean()),
  raw: z._default(z.boolean(), false),
  format,
  keep_alive: keepAlive,
  images,
  options,
  think,
});
export type GenerateRequest = z.infer<typeof generateRequestSchema>;

export const embedRequestSchema = z.object({
  model: z._default(name, ""),
  input: z.nullish(z.union([z.string(), z.array(z.string()).check(z.maxLength(LIMITS.embedInputs))])),
  truncate: z.nullish(z.boolean()),
  dimensions: z.nullish(z.int().check(z.nonnegative())),
  keep_alive: keepAlive,
  options,
});
export type EmbedRequest = z.infer<typeof embedRequestSchema>;

export const embeddingsRequestSchema = z.object({
  model: z._default(name, ""),
  prompt: z._default(z.string(), ""),
  keep_alive: keepAlive,
  options,
});
export type EmbeddingsRequest = z.infer<typeof embeddingsRequestSchema>;

/** /api/show: `model`, or the older `name`. */
export const showRequestSchema = z.object({
  model: z.optional(name),
  name: z.optional(name),
  verbose: z.nullish(z.boolean()),
});

/** /api/delete (ollama-js sends `name`). */
export const deleteRequestSchema = z.object({ model: z.optional(name), name: z.optional(name) });
