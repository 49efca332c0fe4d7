import type { ModelStatus } from "../models/types";

/** Internal process states; the API maps them onto the five ModelStatus values. */
export type ProcessState = "stopped" | "loading" | "running" | "stopping" | "error";

/** What the supervisor knows about one model's llama-server right now. */
export interface ModelRuntimeInfo {
  modelId: string;
  state: ProcessState;
  /** The reference status this state shows as. */
  status: ModelStatus;
  /** Finer detail for people ("stopping", "restarting in 4s (attempt 2/5)", "loading model"). */
  statusDetail?: string;
  port?: number;
  pid?: number;
  /** http://host:port of the model's llama-server while it runs. */
  baseUrl?: string;
  loadedAt?: string;
  /** When the current load started (for progress display). */
  loadingSince?: string;
  /** Context size (n_ctx) the running server reports in /props. */
  contextSize?: number;
  /** RSS (+ GPU memory when nvidia-smi lists the pid), MB. */
  memoryUsage?: number;
  error?: { message: string; exitCode?: number | null; signal?: string | null; logTail?: string[] };
  /** Crash restarts in a row. */
  restarts: number;
  /** A crash restart is scheduled (state "error" until it begins). */
  restartPending?: boolean;
}

/** The supervisor as the rest of the product sees it. */
export interface SupervisorApi {
  /** Starts (or joins the load in progress) and resolves once it answers /health with 200. Throws ApiError. */
  start(modelId: string): Promise<ModelRuntimeInfo>;
  /** Idempotent. Resolves once the process has exited. */
  stop(modelId: string): Promise<void>;
  /** Stops every child (shutdown). */
  stopAll(): Promise<void>;
  runtimeOf(modelId: string): ModelRuntimeInfo | undefined;
  runtimes(): ModelRuntimeInfo[];
  /** ISO time of the latest /health poll of any child, or null. */
  lastHealthCheck(): string | null;
  /** Stops llama-servers orphaned by a kill -9 of a previous proxy (pidfile). Returns how many. */
  cleanupOrphans?(): Promise<number>;
  /** Starts the models flagged autoStart (does not wait; failures are logged). */
  autoStart?(): void;
}
