/**
 * Ollama's request bodies (api/types.go), validated with zod. Like Go's json decoder, unknown
 * fields are ignored (clients send fields of newer Ollama versions); known fields must have
 * their type. Every list is bounded (the body limit bounds the rest).
 */
import { z } from "zod";

export const LIMITS = {
  messages: 10_000,
  imagesPerMessage: 32,
  tools: 256,
  toolCalls: 128,
  embedInputs: 2_048,
  nameLength: 512,
} as const;

const name = z.string().max(LIMITS.nameLength);
const keepAlive = z.union([z.number(), z.string().max(64)]).nullish();
const options = z.record(z.string(), z.unknown()).nullish();
/** "json", "" (none) or a JSON schema object. */
const format = z.union([z.literal(""), z.literal("json"), z.record(z.string(), z.unknown())]).nullish();
const think = z.union([z.boolean(), z.enum(["low", "medium", "high", "max"])]).nullish();
const images = z.array(z.string()).max(LIMITS.imagesPerMessage).nullish();

export const toolCallSchema = z.object({
  id: z.string().optional(),
  function: z.object({
    index: z.number().int().optional(),
    name: z.string(),
    arguments: z.record(z.string(), z.unknown()).default({}),
  }),
});
export type OllamaToolCall = z.infer<typeof toolCallSchema>;

export const messageSchema = z.object({
  role: z.string().min(1).max(64),
  content: z.string().default(""),
  thinking: z.string().optional(),
  images,
  tool_calls: z.array(toolCallSchema).max(LIMITS.toolCalls).nullish(),
  tool_name: z.string().optional(),
  tool_call_id: z.string().optional(),
});
export type OllamaMessage = z.infer<typeof messageSchema>;

const toolSchema = z.object({
  type: z.string().default("function"),
  function: z.object({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});

export const chatRequestSchema = z.object({
  model: name.default(""),
  messages: z.array(messageSchema).max(LIMITS.messages).nullish(),
  stream: z.boolean().nullish(),
  format,
  keep_alive: keepAlive,
  tools: z.array(toolSchema).max(LIMITS.tools).nullish(),
  options,
  think,
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

export const generateRequestSchema = z.object({
  model: name.default(""),
  prompt: z.string().default(""),
  suffix: z.string().default(""),
  system: z.string().default(""),
  template: z.string().default(""),
  context: z.array(z.number()).nullish(),
  stream: z.boolean().nullish(),
  raw: z.boolean().default(false),
  format,
  keep_alive: keepAlive,
  images,
  options,
  think,
});
export type GenerateRequest = z.infer<typeof generateRequestSchema>;

export const embedRequestSchema = z.object({
  model: name.default(""),
  input: z.union([z.string(), z.array(z.string()).max(LIMITS.embedInputs)]).nullish(),
  truncate: z.boolean().nullish(),
  dimensions: z.number().int().nonnegative().nullish(),
  keep_alive: keepAlive,
  options,
});
export type EmbedRequest = z.infer<typeof embedRequestSchema>;

export const embeddingsRequestSchema = z.object({
  model: name.default(""),
  prompt: z.string().default(""),
  keep_alive: keepAlive,
  options,
});
export type EmbeddingsRequest = z.infer<typeof embeddingsRequestSchema>;

/** /api/show: `model`, or the older `name`. */
export const showRequestSchema = z.object({
  model: name.optional(),
  name: name.optional(),
  verbose: z.boolean().nullish(),
});

/** /api/delete (ollama-js sends `name`). */
export const deleteRequestSchema = z.object({ model: name.optional(), name: name.optional() });
