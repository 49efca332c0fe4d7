/**
 * Ollama model names ("model:tag", optionally "namespace/model:tag") against this proxy's ids,
 * names and aliases. Ollama clients remember the names /api/tags gave them (`<id>:latest`) and
 * users type what Ollama taught them (`llama3.2`, `llama3.2:latest`), so both must find the model;
 * a real tag (`llama3.2:3b`) is only ever matched as written (an alias), never by dropping it,
 * or `:1b` and `:3b` would collapse onto one model.
 */

export const DEFAULT_TAG = "latest";

/** Splits "ns/model:tag" into base and tag; a colon inside a host:port prefix is not a tag. */
export function splitTag(name: string): { base: string; tag?: string } {
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  if (colon > slash && colon < name.length - 1) return { base: name.slice(0, colon), tag: name.slice(colon + 1) };
  if (colon === name.length - 1) return { base: name.slice(0, -1) };
  return { base: name };
}

/**
 * The names to try, in order, for what an Ollama client sent: as written, then with `:latest`
 * dropped (our ids have no tags) or added (an alias written as "foo:latest"). A leading
 * "library/" (Ollama's default namespace, which some clients spell out) is dropped last.
 */
export function candidateNames(requested: string): string[] {
  const name = requested.trim();
  if (!name) return [];
  const out: string[] = [name];
  const add = (n: string) => {
    if (n && !out.includes(n)) out.push(n);
  };
  const { base, tag } = splitTag(name);
  if (tag === undefined) add(`${base}:${DEFAULT_TAG}`);
  else if (tag.toLowerCase() === DEFAULT_TAG) add(base);
  for (const n of [...out]) {
    const m = /^(?:registry\.ollama\.ai\/)?library\/(.+)$/i.exec(n);
    if (m) add(m[1]!);
  }
  return out;
}

/** The name /api/tags and /api/ps show for a model: its id, tagged like every Ollama name. */
export function ollamaName(id: string): string {
  return splitTag(id).tag === undefined ? `${id}:${DEFAULT_TAG}` : id;
}

/**
 * Finds a model by an Ollama name with the registry's own resolver (id, name, alias, file name),
 * trying each candidate in turn.
 */
export function resolveOllamaName<T>(requested: string, resolve: (name: string) => T | undefined): T | undefined {
  for (const n of candidateNames(requested)) {
    const found = resolve(n);
    if (found) return found;
  }
  return undefined;
}
