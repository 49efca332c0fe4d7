import type { ModelRow } from "../db/schema";
import type { Services } from "../services";
import type { ModelMemoryView } from "../memory/service";
import type { ModelRuntimeInfo } from "../supervisor/types";
import type { Model } from "./types";

/** A registry row merged with the supervisor's live view (and the memory plan) into the API's Model shape. */
export function toApiModel(row: ModelRow, runtime?: ModelRuntimeInfo, memory?: ModelMemoryView): Model {
  const status = runtime && runtime.state !== "stopped" ? runtime.status : row.source === "discovered" ? "discovered" : "stopped";
  return {
    id: row.id,
    name: row.name,
    ...(row.description ? { description: row.description } : {}),
    status,
    ...(row.version ? { version: row.version } : {}),
    path: row.path,
    size: row.size,
    family: row.family,
    // The running server's own n_ctx beats the file's trained context.
    ...(runtime?.contextSize != null ? { contextSize: runtime.contextSize } : row.contextSize != null ? { contextSize: row.contextSize } : {}),
    ...(runtime?.loadedAt ? { loadedAt: runtime.loadedAt } : {}),
    ...(row.lastUsed ? { lastUsed: row.lastUsed } : {}),
    ...(runtime?.memoryUsage != null ? { memoryUsage: runtime.memoryUsage } : {}),
    ...(row.format ? { format: row.format } : {}),
    ...(row.quantization ? { quantization: row.quantization } : {}),
    ...(runtime?.statusDetail ? { statusDetail: runtime.statusDetail } : row.missing ? { statusDetail: "file missing" } : {}),
    ...(runtime?.error ? { error: runtime.error } : {}),
    ...(runtime?.port ? { port: runtime.port } : {}),
    ...(runtime?.pid ? { pid: runtime.pid } : {}),
    source: row.source,
    ...(row.missing ? { missing: true } : {}),
    ...(row.mmprojPath ? { mmprojPath: row.mmprojPath } : {}),
    settings: row.settings,
    ...(memory ? { memory } : {}),
    ...(runtime?.placement ? { placement: runtime.placement } : {}),
  };
}

/** Every registered and discovered model with its live status (GET /api/models, WS, console). */
export function listModels(s: Pick<Services, "registry" | "supervisor"> & Partial<Pick<Services, "memory">>): Model[] {
  const rows = s.registry.list();
  // Headers are read at once for a registry of ordinary size (~1 ms each); a scan of hundreds of
  // files gets its estimates in the background instead ("estimate pending" until then).
  const lazy = rows.length > 100;
  return rows.map((row) => toApiModel(row, s.supervisor.runtimeOf(row.id), s.memory?.view(row, lazy)));
}
