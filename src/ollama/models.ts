/**
 * The model views of Ollama's API (/api/tags, /api/ps, /api/show), built from the registry's
 * rows, the supervisor's runtime view and the GGUF header. Pure functions over those inputs,
 * plus one small cache of headers so listing 1,000 models does not re-read 1,000 files.
 */
import { sha256Hex } from "../crypto";
import { statSync } from "node:fs";
import type { ModelRow } from "../db/schema";
import { FILE_TYPE_LABELS, readGgufHeaderSync, type GgufHeader, type GgufValue } from "../models/gguf";
import type { ModelRuntimeInfo } from "../supervisor/types";
import { ollamaName } from "./names";

export interface OllamaDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[];
  parameter_size: string;
  quantization_level: string;
  context_length?: number;
  embedding_length?: number;
}

/** Ollama's format.HumanNumber: 8030261248 -> "8.0B", 137000000 -> "137M", 22600000 -> "22.60M". */
export function humanNumber(n: number): string {
  const fmt = (v: number, decimals: number, unit: string) => (v === Math.floor(v) ? `${v.toFixed(0)}${unit}` : `${v.toFixed(decimals)}${unit}`);
  if (n >= 1e9) return fmt(n / 1e9, 1, "B");
  if (n >= 1e6) return fmt(n / 1e6, 2, "M");
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)}K`;
  return String(Math.max(0, Math.round(n)));
}

const numOf = (v: GgufValue | undefined): number | undefined =>
  typeof v === "number" && Number.isFinite(v) ? v : typeof v === "bigint" ? Number(v) : undefined;
const strOf = (v: GgufValue | undefined): string | undefined => (typeof v === "string" && v.trim() ? v.trim() : undefined);

/** What the Ollama views read from a header (the whole metadata, for /api/show). */
export interface HeaderFacts {
  metadata: Record<string, GgufValue>;
  architecture?: string;
  parameterCount?: number;
  sizeLabel?: string;
  quantization?: string;
  contextLength?: number;
  embeddingLength?: number;
  chatTemplate?: string;
  modifiedAt?: string;
}

export function factsOf(header: GgufHeader, mtime?: Date): HeaderFacts {
  const m = header.metadata;
  const architecture = strOf(m["general.architecture"]);
  const ft = numOf(m["general.file_type"]);
  return {
    metadata: m,
    architecture,
    parameterCount: numOf(m["general.parameter_count"]),
    sizeLabel: strOf(m["general.size_label"]),
    quantization: ft !== undefined ? FILE_TYPE_LABELS[ft] : undefined,
    contextLength: architecture ? numOf(m[`${architecture}.context_length`]) : undefined,
    embeddingLength: architecture ? numOf(m[`${architecture}.embedding_length`]) : undefined,
    chatTemplate: strOf(m["tokenizer.chat_template"]),
    modifiedAt: mtime?.toISOString(),
  };
}

/**
 * Headers by path, invalidated by size and mtime. Listing reads only up to the tokenizer section
 * (general.* and <arch>.* come first: a few KB); /api/show needs the chat template, which sits
 * after the vocabulary, so it walks the whole metadata once (tens of ms for a 150k vocabulary).
 * Either way the facts are then served from memory.
 */
export class HeaderCache {
  private entries = new Map<string, { key: string; full: boolean; facts: HeaderFacts }>();
  constructor(private readonly max = 2048) {}

  get(path: string, full = false): HeaderFacts | null {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch {
      return null;
    }
    const key = `${st.size}:${st.mtimeMs}`;
    const hit = this.entries.get(path);
    if (hit && hit.key === key && (hit.full || !full)) return hit.facts;
    let facts: HeaderFacts;
    let complete = full;
    try {
      const header = readGgufHeaderSync(path, full ? {} : { stopBeforeLargeArrays: (_m, k) => k.startsWith("tokenizer.") });
      complete = header.complete;
      facts = factsOf(header, st.mtime);
    } catch {
      // Not readable as GGUF (a registered file of another format): the row's own fields stand.
      facts = { metadata: {}, modifiedAt: st.mtime.toISOString() };
      complete = true;
    }
    this.entries.delete(path);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(path, { key, full: complete, facts });
    return facts;
  }
}

/**
 * A stable digest per model. Ollama's is the sha256 of its manifest; hashing multi-GB GGUF files
 * on every listing is out of the question, so this is the sha256 of what identifies the file
 * here (path, size, registration time): it changes when the model does, which is what clients
 * use it for (cache keys, "same model?").
 */
export function modelDigest(row: Pick<ModelRow, "path" | "size" | "createdAt">): string {
  return sha256Hex(`${row.path}\0${row.size}\0${row.createdAt}`);
}

export function detailsOf(row: ModelRow, facts: HeaderFacts | null): OllamaDetails {
  const family = facts?.architecture ?? (row.family !== "unknown" ? row.family : "");
  const params = facts?.parameterCount !== undefined && facts.parameterCount > 0 ? humanNumber(facts.parameterCount) : facts?.sizeLabel ?? "";
  return {
    parent_model: "",
    format: row.format ?? "gguf",
    family,
    families: family ? [family] : [],
    parameter_size: params,
    quantization_level: row.quantization ?? facts?.quantization ?? "",
  };
}

/** Ollama's capability rules (server/images.go), applied to the GGUF header and chat template. */
export function capabilitiesOf(row: Pick<ModelRow, "mmprojPath">, facts: HeaderFacts | null): string[] {
  const m = facts?.metadata ?? {};
  const arch = facts?.architecture;
  const caps: string[] = [];
  if (arch && m[`${arch}.pooling_type`] !== undefined) caps.push("embedding");
  else caps.push("completion");
  if (row.mmprojPath || (arch && m[`${arch}.vision.block_count`] !== undefined) || m["clip.has_vision_encoder"] === true) caps.push("vision");
  const t = facts?.chatTemplate ?? "";
  if (t.includes("tools") || t.includes("tool_call")) caps.push("tools");
  if (m["tokenizer.ggml.fim_pre_token_id"] !== undefined || m["tokenizer.ggml.prefix_token_id"] !== undefined) caps.push("insert");
  if (t.includes("<think>") && t.includes("</think>")) caps.push("thinking");
  return caps;
}

/** GGUF metadata as /api/show's model_info: scalars as they are, arrays as [] (Ollama without verbose). */
export function modelInfoOf(facts: HeaderFacts | null): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!facts) return out;
  for (const [k, v] of Object.entries(facts.metadata)) {
    if (k === "tokenizer.chat_template") continue; // it is `template`
    if (typeof v === "bigint") out[k] = Number(v);
    else if (typeof v === "object") out[k] = [];
    else out[k] = v;
  }
  return out;
}

export function tagEntry(row: ModelRow, facts: HeaderFacts | null) {
  const name = ollamaName(row.id);
  return {
    name,
    model: name,
    modified_at: facts?.modifiedAt ?? row.updatedAt,
    size: row.size,
    digest: modelDigest(row),
    details: detailsOf(row, facts),
  };
}

/** Far enough to mean "never" and still a valid date (Ollama shows 2318-... for keep_alive -1). */
export const NEVER_EXPIRES = "2318-01-01T00:00:00Z";

/**
 * Ollama's size and size_vram: the bytes the lifecycle owner placed the model in (its estimate,
 * or what llama-server reported last time, scaled), split into GPU and the rest; without a
 * placement, the measured RSS (+ GPU) of the process, else the file size.
 */
export function memoryOf(row: Pick<ModelRow, "size">, rt: Pick<ModelRuntimeInfo, "placement" | "memoryUsage">): { size: number; sizeVram: number } {
  const devices = rt.placement?.devices ?? [];
  if (devices.length > 0) {
    const size = devices.reduce((n, d) => n + d.bytes, 0);
    const sizeVram = devices.filter((d) => d.id.startsWith("gpu")).reduce((n, d) => n + d.bytes, 0);
    return { size: Math.round(size), sizeVram: Math.round(sizeVram) };
  }
  if (rt.memoryUsage !== undefined) return { size: Math.round(rt.memoryUsage * 1024 * 1024), sizeVram: 0 };
  return { size: row.size, sizeVram: 0 };
}

export function psEntry(row: ModelRow, rt: ModelRuntimeInfo, facts: HeaderFacts | null, expiresAt: number | null) {
  const name = ollamaName(row.id);
  const { size, sizeVram } = memoryOf(row, rt);
  return {
    name,
    model: name,
    size,
    digest: modelDigest(row),
    details: detailsOf(row, facts),
    expires_at: expiresAt === null || !Number.isFinite(expiresAt) ? NEVER_EXPIRES : new Date(expiresAt).toISOString(),
    size_vram: sizeVram,
    context_length: rt.contextSize ?? facts?.contextLength ?? 0,
  };
}

export function showEntry(row: ModelRow, facts: HeaderFacts | null) {
  const details = detailsOf(row, facts);
  const license = facts ? strOf(facts.metadata["general.license"]) : undefined;
  const params: string[] = [];
  const ctx = row.settings.ctxSize ?? row.contextSize;
  if (ctx) params.push(`${"num_ctx".padEnd(30)} ${ctx}`);
  return {
    ...(license ? { license } : {}),
    modelfile: `# Modelfile generated by llama-async-proxy\nFROM ${row.path}\n`,
    parameters: params.join("\n"),
    template: facts?.chatTemplate ?? "",
    details,
    model_info: modelInfoOf(facts),
    capabilities: capabilitiesOf(row, facts),
    modified_at: facts?.modifiedAt ?? row.updatedAt,
  };
}
