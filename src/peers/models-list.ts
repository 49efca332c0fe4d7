import type { Services } from "../services";
import { viaHops } from "./instance";

/** A peer's model in GET /v1/models: OpenAI's shape, saying where it lives. */
export interface PeerModelEntry {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
  /** The peer (as configured here) that serves it. */
  peer: string;
  status?: string;
  aliases: string[];
}

/**
 * Every reachable peer's models for GET /v1/models, leaving out ids already listed (ours, or a
 * peer earlier in the list) and peers the request already passed (Via), so two instances that
 * peer each other do not list each other's models back and forth.
 */
export function peerModelEntries(s: Pick<Services, "peers">, via: string | null, listed: Set<string>): PeerModelEntry[] {
  const created = Math.floor(Date.now() / 1000);
  const out: PeerModelEntry[] = [];
  for (const m of s.peers.listModels(viaHops(via))) {
    if (listed.has(m.id)) continue;
    listed.add(m.id);
    out.push({ id: m.id, object: "model", created, owned_by: m.peer, peer: m.peer, ...(m.status ? { status: m.status } : {}), aliases: m.aliases });
  }
  return out;
}

/** GET /v1/models/:id for a model only a peer has. */
export function peerModelEntry(s: Pick<Services, "peers">, id: string, via: string | null): PeerModelEntry | undefined {
  return peerModelEntries(s, via, new Set()).find((m) => m.id === id);
}
