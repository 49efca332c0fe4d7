import { queueSnapshot } from "../activity/tracker";
import { listModels } from "../models/view";
import type { Services } from "../services";
import type { RealtimeSources } from "./types";

/**
 * The hub's data sources over the services. Each is read when needed, so a supervisor swapped in
 * after startup is the one asked.
 */
export function realtimeSources(s: Services): RealtimeSources {
  return {
    bus: s.bus,
    log: s.log.child("realtime"),
    authorize: (req, queryKey) => s.auth.allowsRequest(req.headers) || s.auth.keyMatches(queryKey),
    metrics: () => s.collector.latest(),
    models: () => listModels(s),
    recentLogs: (limit) => s.logs.query({ limit }),
    modelsLoading: () => s.supervisor.runtimes().some((r) => r.state === "loading"),
    liveRequests: () => queueSnapshot(s.tracker.list()),
    recentActivity: (limit) => s.activity.query({}, limit).entries,
  };
}
