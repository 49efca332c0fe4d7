/** The five statuses the API ever shows (the seed API's Model.status). */
export type ModelStatus = "running" | "loading" | "stopped" | "error" | "discovered";

/** Model exactly as in the seed API (docs/API.md), plus a few optional fields of ours. */
export interface Model {
  id: string;
  name: string;
  description?: string;
  status: ModelStatus;
  version?: string;
  path: string;
  size: number;
  family: string;
  contextSize?: number;
  loadedAt?: string;
  lastUsed?: string;
  memoryUsage?: number;
  format?: string;
  quantization?: string;
  // Beyond the seed API:
  /** Finer state than `status` (e.g. "stopping", "restarting in 4s", "file missing"). */
  statusDetail?: string;
  /** Why the last start failed, with the last log lines. */
  error?: { message: string; exitCode?: number | null; signal?: string | null; logTail?: string[] };
  /** Port of the model's llama-server while it runs. */
  port?: number;
  pid?: number;
  source?: "registered" | "discovered";
  missing?: boolean;
  mmprojPath?: string;
  settings?: import("../db/schema").ModelSettings;
  /** What it needs (estimate from the GGUF header) and used (llama-server's own report). */
  memory?: import("../memory/service").ModelMemoryView;
  /** Where it runs (devices and bytes), while it occupies memory. */
  placement?: import("../supervisor/planner").Placement;
}
