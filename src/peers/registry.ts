import { Glob } from "bun";
import type { ConfigStore } from "../config/store";
import type { EventBus } from "../events";
import type { Logger } from "../logs/logger";
import { appendVia, INSTANCE_HEADER, INSTANCE_ID_RE } from "./instance";
import { backoffMs } from "./routing";
import type { PeerConfig } from "./schema";

/** Health-check and back-off timings; tests shrink them. */
export interface PeerTimings {
  /** Background check of every peer (GET /v1/models). */
  checkIntervalMs: number;
  /** A check that takes longer counts as failed. */
  checkTimeoutMs: number;
  /** First back-off after a failure; doubles per failure in a row up to backoffMaxMs. */
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_PEER_TIMINGS: PeerTimings = { checkIntervalMs: 10_000, checkTimeoutMs: 3000, backoffBaseMs: 2000, backoffMaxMs: 60_000 };

/** Bounds on what a peer may tell us (its answers are input like any other). */
const MAX_PEER_MODELS = 2000;
const MAX_MODEL_ID = 500;
const MAX_PEER_BODY = 4 * 1024 * 1024;

/** One model a peer serves, as its /v1/models (and, for our product, /api/models) says. */
export interface PeerModel {
  id: string;
  /** Another instance of this product says: running, loading, stopped, error, discovered. */
  status?: string;
  statusDetail?: string;
  aliases: string[];
  /** The peer itself serves it (false: the peer routes it on to one of its own peers). */
  local: boolean;
}

export type PeerHealth = "unknown" | "up" | "down";

/** What GET /api/peers, the console and /metrics show of one peer. */
export interface PeerSnapshot {
  name: string;
  url: string;
  priority: number;
  state: PeerHealth;
  /** In back-off after a failure: skipped by routing until this time. */
  backoffUntil?: string;
  /** Another instance of this product (it sent its instance id). */
  product: boolean;
  instanceId?: string;
  latencyMs?: number;
  lastCheckAt?: string;
  lastOkAt?: string;
  lastError?: { message: string; at: string };
  /** Failures in a row (checks and requests). */
  failures: number;
  models: PeerModel[];
  inFlight: number;
  requestsTotal: number;
  requestErrors: number;
}

interface Peer {
  config: PeerConfig;
  globs: Glob[];
  state: PeerHealth;
  product: boolean;
  instanceId?: string;
  latencyMs?: number;
  lastCheckAt?: string;
  lastOkAt?: string;
  lastError?: { message: string; at: string };
  failures: number;
  backoffUntil: number;
  models: PeerModel[];
  inFlight: number;
  inFlightByModel: Map<string, number>;
  requestsTotal: number;
  requestErrors: number;
  checking?: Promise<void>;
}

/** A peer that has a requested model, with what routing needs to know. */
export interface PeerMatch {
  peer: string;
  modelId: string;
  running: boolean;
  inFlight: number;
  priority: number;
  available: boolean;
}

/**
 * Owns the state of every configured peer: health (checked in the background), latency, models,
 * errors, back-off and the requests we have in flight there. Routing decisions are made by
 * orderRoutes (pure) from what this registry reports; the relay reports back successes and
 * failures here.
 */
export class PeerRegistry {
  private peers = new Map<string, Peer>();
  private timer?: ReturnType<typeof setInterval>;
  private closed = false;
  readonly timings: PeerTimings;
  private unsubscribe?: () => void;

  constructor(
    private readonly deps: { config: Pick<ConfigStore, "get">; log: Logger; bus?: EventBus; instanceId: string },
    timings: Partial<PeerTimings> = {},
  ) {
    this.timings = { ...DEFAULT_PEER_TIMINGS, ...timings };
    this.reconcile(deps.config.get().peers ?? []);
    this.unsubscribe = deps.bus?.on("config.changed", (cfg) => {
      this.reconcile(cfg.peers ?? []);
      if (this.timer) void this.checkAll();
    });
  }

  /** Starts the background checks (one round at once). */
  start(): void {
    if (this.closed || this.timer) return;
    void this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.timings.checkIntervalMs);
    this.timer.unref?.();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
  }

  /** Peers added, removed or changed in the config; an unchanged peer keeps its state. */
  private reconcile(configs: PeerConfig[]): void {
    const next = new Map<string, Peer>();
    for (const config of configs) {
      const old = this.peers.get(config.name);
      if (old && old.config.url === config.url && old.config.apiKey === config.apiKey) {
        old.config = config;
        old.globs = (config.models ?? []).map((g) => new Glob(g));
        next.set(config.name, old);
        continue;
      }
      next.set(config.name, {
        config,
        globs: (config.models ?? []).map((g) => new Glob(g)),
        state: "unknown",
        product: false,
        failures: 0,
        backoffUntil: 0,
        models: [],
        inFlight: 0,
        inFlightByModel: new Map(),
        requestsTotal: 0,
        requestErrors: 0,
      });
    }
    this.peers = next;
  }

  names(): string[] {
    return [...this.peers.keys()];
  }

  has(name: string): boolean {
    return this.peers.has(name);
  }

  /** Checks every peer now, concurrently (a slow peer does not delay the others). */
  async checkAll(): Promise<void> {
    await Promise.all([...this.peers.values()].map((p) => this.check(p)));
  }

  /** Checks one peer now (joins a check already under way). Unknown name: false. */
  async checkNow(name: string): Promise<boolean> {
    const p = this.peers.get(name);
    if (!p) return false;
    await this.check(p);
    return true;
  }

  private check(p: Peer): Promise<void> {
    return (p.checking ??= this.doCheck(p).finally(() => (p.checking = undefined)));
  }

  private headers(p: Peer, via?: string | null): Headers {
    const h = new Headers({ via: appendVia(via, this.deps.instanceId) });
    if (p.config.apiKey) h.set("authorization", `Bearer ${p.config.apiKey}`);
    return h;
  }

  /** Headers for a request sent to a peer on a client's behalf (the client's Via extended). */
  requestHeaders(name: string, base: Headers, incomingVia: string | null): Headers {
    const p = this.peers.get(name);
    base.set("via", appendVia(incomingVia, this.deps.instanceId));
    if (p?.config.apiKey) base.set("authorization", `Bearer ${p.config.apiKey}`);
    return base;
  }

  urlOf(name: string): string | undefined {
    return this.peers.get(name)?.config.url;
  }

  /**
   * GET /v1/models on the peer (our Via attached, so another instance of this product leaves out
   * what it learned from us), and for another instance of this product also GET /api/models for
   * each model's status. Both within checkTimeoutMs.
   */
  private async doCheck(p: Peer): Promise<void> {
    const config = p.config;
    const t0 = performance.now();
    const at = new Date().toISOString();
    try {
      const signal = AbortSignal.timeout(this.timings.checkTimeoutMs);
      const res = await fetch(`${config.url}/v1/models`, { headers: this.headers(p), signal, redirect: "manual" });
      if (!res.ok) throw new Error(`GET /v1/models answered ${res.status}${await errorText(res)}`);
      const latencyMs = Math.round((performance.now() - t0) * 10) / 10;
      const instance = res.headers.get(INSTANCE_HEADER);
      const listed = parseModelList(await readBounded(res));
      let models = listed;
      const product = instance !== null && INSTANCE_ID_RE.test(instance);
      if (product) {
        if (instance === this.deps.instanceId) throw new Error("this peer is this very instance (its URL points back at us)");
        models = mergeStatuses(listed, await this.fetchProductModels(p, signal));
      }
      if (p.config !== config) return; // reconfigured while checking: the next round counts
      p.models = models.filter((m) => p.globs.length === 0 || p.globs.some((g) => g.match(m.id)));
      p.product = product;
      p.instanceId = product ? instance! : undefined;
      p.latencyMs = latencyMs;
      p.lastCheckAt = at;
      p.lastOkAt = at;
      if (p.state !== "up") this.deps.log.info(`Peer ${config.name} is up (${p.models.length} models, ${latencyMs} ms)`);
      p.state = "up";
      p.failures = 0;
      p.backoffUntil = 0;
    } catch (err) {
      if (p.config !== config) return;
      p.lastCheckAt = at;
      const message = describeFetchError(err, this.timings.checkTimeoutMs);
      if (p.state !== "down") this.deps.log.warn(`Peer ${config.name} is unreachable: ${message}`);
      p.state = "down";
      this.fail(p, message);
    }
  }

  /** /api/models of another instance of this product: status per local model (envelope). */
  private async fetchProductModels(p: Peer, signal: AbortSignal): Promise<Map<string, { status?: string; statusDetail?: string }>> {
    const out = new Map<string, { status?: string; statusDetail?: string }>();
    try {
      const res = await fetch(`${p.config.url}/api/models`, { headers: this.headers(p), signal, redirect: "manual" });
      if (!res.ok) return out;
      const body = JSON.parse(await readBounded(res)) as { data?: unknown };
      const list = Array.isArray(body.data) ? body.data : [];
      for (const m of list.slice(0, MAX_PEER_MODELS)) {
        const id = (m as { id?: unknown })?.id;
        if (typeof id !== "string" || id.length > MAX_MODEL_ID) continue;
        const status = (m as { status?: unknown }).status;
        const detail = (m as { statusDetail?: unknown }).statusDetail;
        out.set(id, { ...(typeof status === "string" ? { status: status.slice(0, 40) } : {}), ...(typeof detail === "string" ? { statusDetail: detail.slice(0, 200) } : {}) });
      }
    } catch {
      // Statuses are extra information: the model list from /v1/models stands without them.
    }
    return out;
  }

  private fail(p: Peer, message: string): void {
    p.failures++;
    p.backoffUntil = Date.now() + backoffMs(p.failures, this.timings.backoffBaseMs, this.timings.backoffMaxMs);
    p.lastError = { message, at: new Date().toISOString() };
  }

  private available(p: Peer, now = Date.now()): boolean {
    return p.state === "up" && now >= p.backoffUntil;
  }

  /**
   * Peers that list `name` (by id or alias), except peers that the request already passed (their
   * instance id is in its Via): those would send it back here or round in a circle.
   */
  matches(name: string, passed: readonly string[] = []): PeerMatch[] {
    const lower = name.toLowerCase();
    const out: PeerMatch[] = [];
    const now = Date.now();
    for (const [peerName, p] of this.peers) {
      if (p.instanceId && passed.includes(p.instanceId)) continue;
      const m = p.models.find((x) => x.id === name) ?? p.models.find((x) => x.id.toLowerCase() === lower || x.aliases.includes(name));
      if (!m) continue;
      out.push({
        peer: peerName,
        modelId: m.id,
        // A server that is not our product (vLLM, llama-server, Ollama) serves what it lists.
        running: m.status === undefined ? !p.product : m.status === "running",
        inFlight: p.inFlightByModel.get(m.id) ?? 0,
        priority: p.config.priority ?? 0,
        available: this.available(p, now),
      });
    }
    return out;
  }

  /** Every model of every reachable peer, for GET /v1/models (same Via rule as matches()). */
  listModels(passed: readonly string[] = []): Array<PeerModel & { peer: string }> {
    const out: Array<PeerModel & { peer: string }> = [];
    for (const [name, p] of this.peers) {
      if (p.state !== "up" || (p.instanceId && passed.includes(p.instanceId))) continue;
      for (const m of p.models) out.push({ ...m, peer: name });
    }
    return out;
  }

  /** A model that another instance of this product runs itself (so it can be started there). */
  productModel(id: string): { peer: string; model: PeerModel } | undefined {
    for (const [name, p] of this.peers) {
      if (!p.product || p.state !== "up") continue;
      const model = p.models.find((m) => m.local && m.id === id);
      if (model) return { peer: name, model };
    }
    return undefined;
  }

  /** Counts a request sent to a peer; the returned function ends it (idempotent). */
  beginRequest(name: string, modelId: string): (outcome: { ok: boolean }) => void {
    const p = this.peers.get(name);
    if (!p) return () => {};
    p.inFlight++;
    p.inFlightByModel.set(modelId, (p.inFlightByModel.get(modelId) ?? 0) + 1);
    let ended = false;
    return ({ ok }) => {
      if (ended) return;
      ended = true;
      p.inFlight--;
      const n = (p.inFlightByModel.get(modelId) ?? 1) - 1;
      if (n > 0) p.inFlightByModel.set(modelId, n);
      else p.inFlightByModel.delete(modelId);
      p.requestsTotal++;
      if (!ok) p.requestErrors++;
    };
  }

  /**
   * A request could not reach the peer (connection refused or reset, DNS, TLS): it is skipped
   * for a back-off period (doubling per failure in a row) and marked down until a check passes.
   */
  reportUnreachable(name: string, message: string): void {
    const p = this.peers.get(name);
    if (!p) return;
    if (p.state !== "down") this.deps.log.warn(`Peer ${name} failed a request and is skipped for a while: ${message}`);
    p.state = "down";
    this.fail(p, message);
  }

  snapshot(): PeerSnapshot[] {
    return [...this.peers.values()].map((p) => ({
      name: p.config.name,
      url: p.config.url,
      priority: p.config.priority ?? 0,
      state: p.state,
      ...(p.backoffUntil > Date.now() ? { backoffUntil: new Date(p.backoffUntil).toISOString() } : {}),
      product: p.product,
      ...(p.instanceId ? { instanceId: p.instanceId } : {}),
      ...(p.latencyMs !== undefined ? { latencyMs: p.latencyMs } : {}),
      ...(p.lastCheckAt ? { lastCheckAt: p.lastCheckAt } : {}),
      ...(p.lastOkAt ? { lastOkAt: p.lastOkAt } : {}),
      ...(p.lastError ? { lastError: p.lastError } : {}),
      failures: p.failures,
      models: p.models,
      inFlight: p.inFlight,
      requestsTotal: p.requestsTotal,
      requestErrors: p.requestErrors,
    }));
  }
}

/** The peer's body as text, refusing more than MAX_PEER_BODY (a peer is not trusted to be small). */
async function readBounded(res: Response): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_PEER_BODY) throw new Error(`answer too large (${declared} bytes)`);
  const buf = await res.arrayBuffer();
  if (buf.byteLength > MAX_PEER_BODY) throw new Error(`answer too large (${buf.byteLength} bytes)`);
  return new TextDecoder().decode(buf);
}

async function errorText(res: Response): Promise<string> {
  try {
    const text = (await res.text()).slice(0, 300).trim();
    return text ? `: ${text}` : "";
  } catch {
    return "";
  }
}

/** OpenAI's list shape `{data:[{id,...}]}`; entries that are not models are skipped. */
export function parseModelList(text: string): PeerModel[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error("GET /v1/models did not answer JSON");
  }
  const data = (body as { data?: unknown })?.data;
  // Ollama's /v1/models and others answer {object:"list",data:[...]}; a bare array is tolerated.
  const list = Array.isArray(data) ? data : Array.isArray(body) ? body : null;
  if (!list) throw new Error("GET /v1/models did not answer a model list");
  const out: PeerModel[] = [];
  const seen = new Set<string>();
  for (const entry of list.slice(0, MAX_PEER_MODELS)) {
    const id = (entry as { id?: unknown })?.id;
    if (typeof id !== "string" || !id || id.length > MAX_MODEL_ID || seen.has(id)) continue;
    seen.add(id);
    const aliases = (entry as { aliases?: unknown }).aliases;
    const status = (entry as { status?: unknown }).status;
    out.push({
      id,
      aliases: Array.isArray(aliases) ? aliases.filter((a): a is string => typeof a === "string" && a.length <= MAX_MODEL_ID).slice(0, 50) : [],
      ...(typeof status === "string" ? { status: status.slice(0, 40) } : {}),
      // Another instance of this product marks what it only routes on with `peer`.
      local: typeof (entry as { peer?: unknown }).peer !== "string",
    });
  }
  return out;
}

function mergeStatuses(listed: PeerModel[], statuses: Map<string, { status?: string; statusDetail?: string }>): PeerModel[] {
  if (statuses.size === 0) return listed;
  return listed.map((m) => {
    const s = m.local ? statuses.get(m.id) : undefined;
    return s ? { ...m, ...s } : m;
  });
}

export function describeFetchError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; code?: string };
  if (e?.name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
  const msg = e?.message ?? String(err);
  return e?.code && !msg.includes(e.code) ? `${msg} (${e.code})` : msg;
}
