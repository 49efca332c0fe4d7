import { describe, expect, test } from "bun:test";
import { parseKeysCommand } from "../../src/keys/cli";
import { findKey, generateKey, hashKey, keyAllowsModel, namedKeysSchema, type NamedKey } from "../../src/keys/keys";
import { decideLimit, KeyLimiter, utcDayStart } from "../../src/keys/limiter";
import { EventBus } from "../../src/events";

describe("keyAllowsModel", () => {
  const inference = (models?: string[]) => ({ scope: "inference" as const, models });
  const cases: [string, ReturnType<typeof inference> | { scope: "admin"; models?: string[] }, string, string[], boolean][] = [
    ["no globs: every model", inference(), "anything", [], true],
    ["glob matches the id", inference(["qwen*"]), "qwen3-8b", [], true],
    ["glob does not match", inference(["qwen*"]), "llama-3-8b", [], false],
    ["second glob", inference(["qwen*", "llama-3*"]), "llama-3-8b", [], true],
    ["an alias matches", inference(["gpt-4o*"]), "gpt-oss-120b", ["gpt-4o-mini"], true],
    ["exact name", inference(["tiny"]), "tiny-2", [], false],
    ["admin ignores globs", { scope: "admin", models: ["none"] }, "x", [], true],
  ];
  for (const [name, key, model, aliases, want] of cases) test(name, () => expect(keyAllowsModel(key, model, aliases)).toBe(want));
});

test("findKey: by hash, constant-time over every entry; generated keys are long and distinct", () => {
  const a = generateKey();
  const b = generateKey();
  expect(a).toMatch(/^lap-[A-Za-z0-9_-]{43}$/);
  expect(a).not.toBe(b);
  const keys: NamedKey[] = [
    { name: "one", hash: hashKey(a), scope: "inference" },
    { name: "two", hash: hashKey(b), scope: "admin" },
  ];
  expect(findKey(keys, a)?.name).toBe("one");
  expect(findKey(keys, b)?.name).toBe("two");
  expect(findKey(keys, "lap-wrong")).toBeUndefined();
  expect(findKey(keys, undefined)).toBeUndefined();
  expect(findKey(keys, "x".repeat(5000))).toBeUndefined();
  expect(namedKeysSchema.safeParse([...keys, { ...keys[0]!, hash: hashKey("z") }]).success).toBe(false); // duplicate name
  expect(namedKeysSchema.safeParse([{ name: "x", hash: "nothex", scope: "inference" }]).success).toBe(false);
});

describe("decideLimit", () => {
  const now = Date.UTC(2026, 0, 1, 23, 59, 30);
  const cases: [string, Parameters<typeof decideLimit>[0], Parameters<typeof decideLimit>[1], ReturnType<typeof decideLimit>][] = [
    ["no limits", { name: "k" }, { recent: [now - 1], tokensToday: 1e9 }, { ok: true }],
    ["under the rate", { name: "k", requestsPerMinute: 2 }, { recent: [now - 1000], tokensToday: 0 }, { ok: true }],
    ["at the rate: wait until the oldest leaves the window", { name: "k", requestsPerMinute: 2 }, { recent: [now - 50_000, now - 1000], tokensToday: 0 }, { ok: false, retryAfterSeconds: 10, message: "Key k is limited to 2 requests per minute" }],
    ["old requests do not count", { name: "k", requestsPerMinute: 1 }, { recent: [now - 61_000], tokensToday: 0 }, { ok: true }],
    ["tokens used up: until midnight UTC", { name: "k", tokensPerDay: 100 }, { recent: [], tokensToday: 100 }, { ok: false, retryAfterSeconds: 30, message: "Key k used its 100 tokens for today (UTC)" }],
  ];
  for (const [name, key, state, want] of cases) test(name, () => expect(decideLimit(key, state, now)).toEqual(want));
});

test("KeyLimiter: counts requests and tokens from the activity batches, seeds today's tokens once", () => {
  const bus = new EventBus();
  let now = Date.UTC(2026, 0, 1, 12);
  const seeded: number[] = [];
  const limiter = new KeyLimiter(bus, (_name, since) => (seeded.push(since), 90), () => now);
  const key: NamedKey = { name: "team", hash: hashKey("x"), scope: "inference", tokensPerDay: 100, requestsPerMinute: 10 };
  expect(limiter.admit(key).ok).toBe(true);
  expect(seeded).toEqual([utcDayStart(now)]);
  bus.emit("activity.recorded", { entries: [{ keyName: "team", promptTokens: 4, completionTokens: 6, time: new Date(now).toISOString() } as never] });
  const refused = limiter.admit(key);
  expect(refused.ok).toBe(false);
  expect(limiter.counters.get("team")).toEqual({ requests: 1, limited: 1, promptTokens: 4, completionTokens: 6 });
  // A new UTC day: seeded again, the budget is back.
  now += 86_400_000;
  expect(limiter.admit(key).ok).toBe(true);
  expect(seeded).toHaveLength(2);
});

test("parseKeysCommand", () => {
  expect(parseKeysCommand(["add", "teammate", "--scope", "inference", "--models", "qwen*,llama*", "--requests-per-minute", "30", "--data-dir", "/d"], {})).toEqual({
    action: "add", name: "teammate", scope: "inference", models: ["qwen*", "llama*"], tokensPerDay: undefined, requestsPerMinute: 30, configPath: "/d/llama-server-config.json",
  });
  expect(() => parseKeysCommand(["add"], {})).toThrow("needs a name");
  expect(() => parseKeysCommand(["add", "x", "--scope", "root"], {})).toThrow("--scope must be admin or inference");
  expect(() => parseKeysCommand(["add", "x", "--tokens-per-day", "0"], {})).toThrow("at least 1");
  expect(() => parseKeysCommand(["rotate", "x"], {})).toThrow("use add, list or remove");
  expect(parseKeysCommand(["list"], { CONFIG_PATH: "/c.json" })).toMatchObject({ action: "list", configPath: "/c.json" });
});
