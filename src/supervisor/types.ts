import type { ModelStatus } from "../models/types";
import type { Placement } from "./planner";

/** How the lifecycle owner wants a model launched (from the planner's placement). */
export interface LaunchPlan {
  /** llama-server arguments of the placement (--fit, --tensor-split), before the model's extraArgs. */
  args: string[];
  /** Environment of the child (CUDA_VISIBLE_DEVICES). */
  env: Record<string, string>;
  placement: Placement;
  /** settingsKey of the memory settings, so a memory report is stored under it. */
  memoryKey?: string;
  /** `args` raise llama-server's verbosity (-lv 4) for its memory report: filter the log. */
  verbose?: boolean;
}

/** Internal process states; the API maps them onto the five ModelStatus values. */
export type ProcessState = "stopped" | "loading" | "running" | "stopping" | "error";

/** What the supervisor knows about one model's llama-server right now. */
export interface ModelRuntimeInfo {
  modelId: string;
  state: ProcessState;
  /** The seed API status this state shows as. */
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
  /** Where the owner placed it (devices and bytes), while it occupies memory. */
  placement?: Placement;
  /** Crash restarts in a row. */
  restarts: number;
  /** A crash restart is scheduled (state "error" until it begins). */
  restartPending?: boolean;
}

/** The supervisor as the rest of the product sees it. */
export interface SupervisorApi {
  /**
   * Starts (or joins the load in progress) and resolves once it answers /health with 200. Throws
   * ApiError. Only the lifecycle owner (pool.ts) calls this in the product; `plan` is its placement.
   */
  start(modelId: string, plan?: LaunchPlan): Promise<ModelRuntimeInfo>;
  /** Idempotent. Resolves once the process has exited. */
  stop(modelId: string): Promise<void>;
  /** Stops every child (shutdown). */
  stopAll(): Promise<void>;
  runtimeOf(modelId: string): ModelRuntimeInfo | undefined;
  runtimes(): ModelRuntimeInfo[];
  /** ISO time of the latest /health poll of any child, or null. */
  lastHealthCheck(): string | null;
  /** Kills a running model's llama-server with `reason` as its error (an RPC worker it used is gone). */
  failRunning?(modelId: string, reason: string): boolean;
  /** Stops llama-servers orphaned by a kill -9 of a previous proxy (pidfile). Returns how many. */
  cleanupOrphans?(): Promise<number>;
}
