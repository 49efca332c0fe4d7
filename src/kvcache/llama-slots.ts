/**
 * The few llama-server endpoints the KV cache uses, as it answers them (tools/server/README.md,
 * server-context.cpp): GET /slots, POST /slots/{id}?action=save|restore (body {"filename"}),
 * POST /apply-template, POST /tokenize. Every call carries a signal: a stop's deadline or a
 * request's own bound, never an unbounded wait on a busy child.
 */
import { childAuthHeaders } from "../supervisor/child-keys";
import type { SlotState } from "./decide";

export class LlamaSlotsError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "LlamaSlotsError";
  }
}

async function call<T>(url: string, init: RequestInit, signal: AbortSignal): Promise<T> {
  // Every child has its own API key (src/supervisor/child-keys.ts); only /health is public.
  const res = await fetch(url, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), ...childAuthHeaders(url) }, signal });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const msg = (body as { error?: { message?: string } } | undefined)?.error?.message ?? (text.slice(0, 200) || `HTTP ${res.status}`);
    throw new LlamaSlotsError(msg, res.status);
  }
  return body as T;
}

const post = (body: unknown): RequestInit => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** GET /slots, reduced to what we use (the real answer carries sampling params per slot). */
export async function getSlots(baseUrl: string, signal: AbortSignal): Promise<SlotState[]> {
  const raw = await call<unknown>(`${baseUrl}/slots`, { method: "GET" }, signal);
  if (!Array.isArray(raw)) throw new LlamaSlotsError("GET /slots did not answer a list");
  return raw
    .filter((s): s is Record<string, unknown> => typeof s === "object" && s !== null && typeof (s as { id?: unknown }).id === "number")
    .map((s) => ({
      id: s.id as number,
      n_ctx: typeof s.n_ctx === "number" ? s.n_ctx : 0,
      is_processing: s.is_processing === true,
      ...(typeof s.n_prompt_tokens === "number" ? { n_prompt_tokens: s.n_prompt_tokens } : {}),
    }));
}

export interface SaveAnswer {
  id_slot: number;
  filename: string;
  n_saved: number;
  n_written: number;
  timings?: { save_ms?: number };
}

export interface RestoreAnswer {
  id_slot: number;
  filename: string;
  n_restored: number;
  n_read: number;
  timings?: { restore_ms?: number };
}

export function saveSlot(baseUrl: string, slot: number, filename: string, signal: AbortSignal): Promise<SaveAnswer> {
  return call<SaveAnswer>(`${baseUrl}/slots/${slot}?action=save`, post({ filename }), signal);
}

export function restoreSlot(baseUrl: string, slot: number, filename: string, signal: AbortSignal): Promise<RestoreAnswer> {
  return call<RestoreAnswer>(`${baseUrl}/slots/${slot}?action=restore`, post({ filename }), signal);
}

/** The chat template applied by the model itself: the exact prompt text a chat request becomes. */
export async function applyTemplate(baseUrl: string, body: Record<string, unknown>, signal: AbortSignal): Promise<string> {
  const r = await call<{ prompt?: unknown }>(`${baseUrl}/apply-template`, post(body), signal);
  if (typeof r?.prompt !== "string") throw new LlamaSlotsError("/apply-template answered no prompt");
  return r.prompt;
}

/**
 * Tokens of a prompt as a completion task gets them: llama-server tokenizes completion prompts
 * with add_special and parse_special on (`tokenize_input_prompts(..., true, true)`), while
 * /tokenize defaults add_special to false, so both are sent explicitly.
 */
export async function tokenize(baseUrl: string, content: string, signal: AbortSignal): Promise<number[]> {
  const r = await call<{ tokens?: unknown }>(`${baseUrl}/tokenize`, post({ content, add_special: true, parse_special: true }), signal);
  if (!Array.isArray(r?.tokens) || !r.tokens.every((t) => typeof t === "number")) throw new LlamaSlotsError("/tokenize answered no token list");
  return r.tokens as number[];
}
