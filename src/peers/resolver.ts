import type { ModelRow } from "../db/schema";
import { ApiError } from "../http/errors";
import type { Services } from "../services";
import { hasPassed, viaHops } from "./instance";
import { orderRoutes, type RouteCandidate } from "./routing";

/** A route the proxy can take: this instance, or a peer (with the model id as that peer names it). */
export type Route = { kind: "local"; model: ModelRow } | { kind: "peer"; peer: string; modelId: string };

/**
 * Where a request for a model goes: the one seam between the proxy and the peers.
 *   - "local": serve it here (the proxy's own path, unchanged).
 *   - "peer": try `routes` in order; the first that answers serves it. A later route may be
 *     local (this instance has the model too, but was busier or lower in the order).
 */
export type ModelTarget = { kind: "local"; model: ModelRow } | { kind: "peer"; requested: string; routes: Route[] };

/**
 * Resolves a request's `model` over this instance and its peers. `localFallback` picks a local
 * model when the request names none (the proxy's selectModel). Throws ApiError (OpenAI-shaped on
 * /v1) when nobody has the model.
 */
export function resolveModelTarget(
  s: Pick<Services, "registry" | "supervisor" | "requests" | "peers" | "instanceId">,
  requested: unknown,
  via: string | null,
  localFallback: (requested: unknown) => ModelRow,
): ModelTarget {
  if (typeof requested !== "string" || requested.trim() === "") return { kind: "local", model: localFallback(requested) };
  const name = requested.trim();
  const local = s.registry.resolve(name);
  // A request that already passed this instance is answered here or nowhere: never sent on.
  if (hasPassed(via, s.instanceId)) {
    if (local) return { kind: "local", model: local };
    throw new ApiError("MODEL_NOT_FOUND", `The model '${name}' does not exist`, "The request already passed this proxy (peers route to each other in a loop); it was not sent on");
  }
  const matches = s.peers.matches(name, viaHops(via));
  if (matches.length === 0) {
    if (local) return { kind: "local", model: local };
    return { kind: "local", model: localFallback(name) }; // throws the usual 404
  }
  const candidates: Array<RouteCandidate & { route: Route }> = matches.map((m) => ({
    host: m.peer, kind: "peer", running: m.running, inFlight: m.inFlight, priority: m.priority, available: m.available,
    route: { kind: "peer", peer: m.peer, modelId: m.modelId },
  }));
  if (local) {
    const state = s.supervisor.runtimeOf(local.id)?.state;
    candidates.push({
      host: "local", kind: "local", running: state === "running", inFlight: s.requests.activeOf(local.id), priority: 0, available: true,
      route: { kind: "local", model: local },
    });
  }
  const ordered = orderRoutes(candidates) as Array<RouteCandidate & { route: Route }>;
  if (ordered.length === 0) {
    throw new ApiError("SERVICE_UNAVAILABLE", `No host can serve '${name}' right now`, `Every peer that has it is unreachable or backing off: ${matches.map((m) => m.peer).join(", ")}`);
  }
  if (ordered[0]!.route.kind === "local") return { kind: "local", model: local! };
  return { kind: "peer", requested: name, routes: ordered.map((c) => c.route) };
}
