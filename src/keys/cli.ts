import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { ConfigStore } from "../config/store";
import { generateKey, hashKey, KEY_NAME_RE, namedKeySchema, type NamedKey } from "./keys";

export class KeysUsageError extends Error {}

export interface KeysCommand {
  action: "add" | "list" | "remove";
  name?: string;
  scope: "admin" | "inference";
  models?: string[];
  tokensPerDay?: number;
  requestsPerMinute?: number;
  configPath: string;
}

const positiveInt = (label: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new KeysUsageError(`${label} must be a whole number of at least 1`);
  return Number(v);
};

/** `keys add <name> [--scope admin|inference] [--models 'a*,b'] [--tokens-per-day N] [--requests-per-minute N]`, `keys list`, `keys remove <name>`. */
export function parseKeysCommand(argv: string[], env: Record<string, string | undefined>): KeysCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        scope: { type: "string" },
        models: { type: "string", multiple: true },
        "tokens-per-day": { type: "string" },
        "requests-per-minute": { type: "string" },
        config: { type: "string" },
        "data-dir": { type: "string" },
      },
    });
  } catch (err) {
    throw new KeysUsageError((err as Error).message);
  }
  const [action, name, ...rest] = parsed.positionals;
  if (action !== "add" && action !== "list" && action !== "remove") throw new KeysUsageError(`Unknown keys command "${action ?? ""}": use add, list or remove`);
  if (rest.length) throw new KeysUsageError(`Unexpected argument "${rest[0]}"`);
  if (action !== "list" && (!name || !KEY_NAME_RE.test(name))) throw new KeysUsageError(`keys ${action} needs a name: 1-64 of letters, digits, '.', '_', '-'`);
  const scope = parsed.values.scope ?? "inference";
  if (scope !== "admin" && scope !== "inference") throw new KeysUsageError(`--scope must be admin or inference, not "${scope}"`);
  const models = parsed.values.models?.flatMap((m) => m.split(",")).map((m) => m.trim()).filter(Boolean);
  const dataDir = resolve(parsed.values["data-dir"] ?? env.DATA_DIR ?? "data");
  return {
    action,
    name,
    scope,
    ...(models?.length ? { models } : {}),
    tokensPerDay: positiveInt("--tokens-per-day", parsed.values["tokens-per-day"]),
    requestsPerMinute: positiveInt("--requests-per-minute", parsed.values["requests-per-minute"]),
    configPath: resolve(parsed.values.config ?? env.CONFIG_PATH ?? `${dataDir}/llama-server-config.json`),
  };
}

/** Runs a keys command on the config file (a running proxy picks the change up by hot reload). Returns the exit status. */
export function runKeysCommand(cmd: KeysCommand, out: (s: string) => void, err: (s: string) => void): number {
  const store = new ConfigStore(cmd.configPath);
  if (store.loadError) {
    // Writing now would replace the user's broken file with defaults.
    err(`error: ${store.loadError}\nFix the file first.\n`);
    return 1;
  }
  const keys = store.namedKeys();
  if (cmd.action === "list") {
    if (!keys.length) out("No named keys.\n");
    for (const k of keys) {
      const limits = [k.models ? `models ${k.models.join(",")}` : "all models", k.tokensPerDay ? `${k.tokensPerDay} tokens/day` : "", k.requestsPerMinute ? `${k.requestsPerMinute} requests/min` : ""].filter(Boolean);
      out(`${k.name}\t${k.scope}\t${limits.join(", ")}\n`);
    }
    return 0;
  }
  if (cmd.action === "remove") {
    if (!keys.some((k) => k.name === cmd.name)) {
      err(`error: no key named "${cmd.name}"\n`);
      return 1;
    }
    store.setKeys(keys.filter((k) => k.name !== cmd.name));
    out(`Removed key ${cmd.name}.\n`);
    return 0;
  }
  if (keys.some((k) => k.name === cmd.name)) {
    err(`error: a key named "${cmd.name}" exists already (keys remove ${cmd.name} first)\n`);
    return 1;
  }
  const secret = generateKey();
  const entry: NamedKey = namedKeySchema.parse({
    name: cmd.name,
    hash: hashKey(secret),
    scope: cmd.scope,
    ...(cmd.models ? { models: cmd.models } : {}),
    ...(cmd.tokensPerDay ? { tokensPerDay: cmd.tokensPerDay } : {}),
    ...(cmd.requestsPerMinute ? { requestsPerMinute: cmd.requestsPerMinute } : {}),
  });
  store.setKeys([...keys, entry]);
  out(`Added ${entry.scope} key "${entry.name}"${entry.models ? ` for models ${entry.models.join(", ")}` : ""}. It is shown only now:\n${secret}\n`);
  return 0;
}
