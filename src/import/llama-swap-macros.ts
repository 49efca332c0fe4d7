/**
 * llama-swap's macro semantics (internal/config/macros.go at the version in
 * tests/fixtures/llama-swap), re-stated for the importer:
 * - `macros` is an ORDERED list; a value is expanded by substituting the macros from the last
 *   declared to the first, so a macro may use macros declared before it (macro-in-macro).
 * - A model's own macros override a global one of the same name in place (keeping its position)
 *   or are appended; `${MODEL_ID}` comes first.
 * - A string that is exactly `${name}` takes the macro's typed value (a number stays a number);
 *   otherwise the value is interpolated as text.
 * - `${PORT}` is given to each model whose cmd uses it, counting up from `startPort` (default
 *   5800) in model-id order.
 * - `${env.NAME}` reads the environment. llama-swap substitutes it in the raw text and fails the
 *   whole file when a variable is unset; we substitute per value and report an unset variable only
 *   where it is used by something we import (an example file full of `${env.API_KEY_1}` under
 *   apiKeys still imports its models).
 * - Names: ^[a-zA-Z0-9_-]+$, under 64 characters, scalar values, no self reference, and PID, PORT
 *   and MODEL_ID are reserved.
 */
export type MacroValue = string | number | boolean;
export interface Macro {
  name: string;
  value: MacroValue;
}

export class MacroError extends Error {}

const NAME_RE = /^[a-zA-Z0-9_-]+$/;
const USE_RE = /\$\{([a-zA-Z0-9_-]+)\}/g;
const ENV_RE = /\$\{env\.([a-zA-Z_][a-zA-Z0-9_]*)\}/g;
const RESERVED = new Set(["PID", "PORT", "MODEL_ID"]);

/** Checks one declared macro; `where` names it in the message ("macros" or "models.x.macros"). */
export function checkMacro(name: string, value: unknown, where: string): Macro {
  if (name.length >= 64) throw new MacroError(`${where}: macro name '${name}' is longer than 63 characters`);
  if (!NAME_RE.test(name)) throw new MacroError(`${where}: macro name '${name}' must match ^[a-zA-Z0-9_-]+$`);
  if (RESERVED.has(name)) throw new MacroError(`${where}: macro name '${name}' is reserved`);
  if (typeof value === "string") {
    if (value.includes(`\${${name}}`)) throw new MacroError(`${where}: macro '${name}' refers to itself`);
  } else if (typeof value !== "number" && typeof value !== "boolean") {
    throw new MacroError(`${where}: macro '${name}' must be a string, number or boolean`);
  }
  return { name, value: value as MacroValue };
}

/** MODEL_ID first, then the globals, each overridden in place by the model's own; new ones appended. */
export function mergeModelMacros(modelId: string, global: Macro[], own: Macro[]): Macro[] {
  const merged: Macro[] = [{ name: "MODEL_ID", value: modelId }, ...global];
  for (const m of own) {
    const at = merged.findIndex((x) => x.name === m.name);
    if (at >= 0) merged[at] = m;
    else merged.push(m);
  }
  return merged;
}

/** Go's fmt "%v" of a scalar, which is what llama-swap interpolates. */
const asText = (v: MacroValue) => String(v);

function substituteOne(value: unknown, name: string, macroValue: MacroValue): unknown {
  const slug = `\${${name}}`;
  if (typeof value === "string") {
    if (value === slug) return macroValue;
    return value.includes(slug) ? value.split(slug).join(asText(macroValue)) : value;
  }
  if (Array.isArray(value)) return value.map((v) => substituteOne(v, name, macroValue));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteOne(v, name, macroValue)]));
  }
  return value;
}

/** Expands `macros` in every string of `value` (keys are not macro targets), last declared first. */
export function substituteMacros(value: unknown, macros: Macro[]): unknown {
  let out = value;
  for (let i = macros.length - 1; i >= 0; i--) out = substituteOne(out, macros[i]!.name, macros[i]!.value);
  return out;
}

/** Also expands macros in mapping keys (llama-swap does so for filters.setParamsByID only). */
export function substituteKeys(map: Record<string, unknown>, macros: Macro[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(map)) {
    const key = substituteMacros(k, macros);
    out[typeof key === "string" ? key : asText(key as MacroValue)] = v;
  }
  return out;
}

/**
 * Replaces `${env.NAME}` in every string of `value`. Unset names are collected in `missing`
 * (the placeholder stays), so the caller can say which import they block.
 */
export function substituteEnv(value: unknown, env: Record<string, string | undefined>, missing: Set<string>): unknown {
  if (typeof value === "string") {
    return value.replace(ENV_RE, (whole, name: string) => {
      const v = env[name];
      if (v === undefined) {
        missing.add(name);
        return whole;
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v) => substituteEnv(v, env, missing));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, missing)]));
  }
  return value;
}

/** The first `${name}` left in any string of `value`, or null. */
export function firstUnresolved(value: unknown): string | null {
  if (typeof value === "string") {
    USE_RE.lastIndex = 0;
    const m = USE_RE.exec(value);
    if (m) return m[1]!;
    ENV_RE.lastIndex = 0;
    const e = ENV_RE.exec(value);
    return e ? `env.${e[1]}` : null;
  }
  if (Array.isArray(value)) {
    for (const v of value) {
      const u = firstUnresolved(v);
      if (u) return u;
    }
    return null;
  }
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) {
      const u = firstUnresolved(v);
      if (u) return u;
    }
  }
  return null;
}

export const usesPort = (s: unknown) => typeof s === "string" && s.includes("${PORT}");
