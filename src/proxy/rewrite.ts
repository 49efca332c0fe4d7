import type { RewriteRules } from "../db/schema";

/** What a rewrite did, for the activity log and tests. */
export interface RewriteOutcome {
  body: Record<string, unknown>;
  /** Top-level parameters removed, defaulted or overridden (empty: nothing changed). */
  changed: string[];
}

/**
 * Applies a model's rewrite rules to a JSON request body. Pure: returns a new object.
 * Order (llama-swap's for its filters, plus defaults): strip, then defaults for parameters the
 * client did not send, then overrides. So "strip temperature + default temperature" replaces the
 * client's value, and an override always wins. Keys are top-level parameters; `model` is refused
 * when the rules are saved (rewriteRulesSchema), because the proxy routes by it.
 */
export function rewriteBody(body: Record<string, unknown>, rules: RewriteRules | undefined): RewriteOutcome {
  if (!rules) return { body, changed: [] };
  const out: Record<string, unknown> = { ...body };
  const changed = new Set<string>();
  for (const key of rules.strip ?? []) {
    if (key in out) {
      delete out[key];
      changed.add(key);
    }
  }
  for (const [key, value] of Object.entries(rules.defaults ?? {})) {
    if (out[key] === undefined) {
      out[key] = value;
      changed.add(key);
    }
  }
  for (const [key, value] of Object.entries(rules.overrides ?? {})) {
    if (JSON.stringify(out[key]) !== JSON.stringify(value)) changed.add(key);
    out[key] = value;
  }
  return { body: changed.size ? out : body, changed: [...changed] };
}

/** True when the rules would change anything at all (so the proxy can skip parsing the body). */
export const hasRewrite = (rules: RewriteRules | undefined): rules is RewriteRules =>
  !!rules && !!((rules.strip?.length ?? 0) + Object.keys(rules.defaults ?? {}).length + Object.keys(rules.overrides ?? {}).length);
