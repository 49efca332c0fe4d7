import type { EventBus } from "../events";
import type { ModelStatus } from "../models/types";
import type { ProcessState } from "./types";

/**
 * Every legal move of a model's llama-server. Anything else is a bug in the supervisor, so
 * setState throws instead of silently corrupting what the API shows.
 *
 *   stopped  -> loading            start
 *   loading  -> running            /health answered 200
 *   loading  -> error              early exit, deadline, bad binary/model file
 *   loading  -> stopping           stop requested while loading
 *   running  -> stopping           stop requested
 *   running  -> error              unexpected exit (crash)
 *   stopping -> stopped            the process has exited
 *   error    -> loading            restart (automatic with backoff, or a new start)
 *   error    -> stopped            stop clears the error
 */
export const TRANSITIONS: Readonly<Record<ProcessState, readonly ProcessState[]>> = {
  stopped: ["loading"],
  loading: ["running", "error", "stopping"],
  running: ["stopping", "error"],
  stopping: ["stopped"],
  error: ["loading", "stopped"],
};

/**
 * The seed API (docs/API.md) only knows five statuses. "stopping" still has a live process that answers
 * requests in flight, so it shows as running (statusDetail says "stopping").
 */
export const STATUS_OF: Readonly<Record<ProcessState, ModelStatus>> = {
  stopped: "stopped",
  loading: "loading",
  running: "running",
  stopping: "running",
  error: "error",
};

export class InvalidTransitionError extends Error {
  constructor(
    readonly modelId: string,
    readonly from: ProcessState,
    readonly to: ProcessState,
  ) {
    super(`Invalid state transition for ${modelId}: ${from} -> ${to}`);
    this.name = "InvalidTransitionError";
  }
}

export const canTransition = (from: ProcessState, to: ProcessState) => TRANSITIONS[from].includes(to);

/**
 * One model's state. The only place the state changes; every change is validated against
 * TRANSITIONS and announced as "model.status" on the bus (the WebSocket hub and console listen).
 */
export class ModelState {
  private current: ProcessState = "stopped";
  private currentDetail: string | undefined;

  constructor(
    readonly modelId: string,
    private readonly bus?: EventBus,
  ) {}

  get state(): ProcessState {
    return this.current;
  }

  get detail(): string | undefined {
    return this.currentDetail;
  }

  get status(): ModelStatus {
    return STATUS_OF[this.current];
  }

  /** Moves to `next` (throws InvalidTransitionError when the table forbids it) and emits. */
  set(next: ProcessState, detail?: string): void {
    const previous = this.current;
    if (!canTransition(previous, next)) throw new InvalidTransitionError(this.modelId, previous, next);
    this.current = next;
    this.currentDetail = detail;
    this.emit(previous, detail);
  }

  /** Changes only the detail (e.g. "restarting in 4s"), announced like a transition. */
  setDetail(detail: string | undefined): void {
    this.currentDetail = detail;
    this.emit(this.current, detail);
  }

  private emit(previous: ProcessState, detail: string | undefined): void {
    this.bus?.emit("model.status", {
      modelId: this.modelId,
      status: STATUS_OF[this.current],
      previous: STATUS_OF[previous],
      state: this.current,
      ...(detail ? { detail } : {}),
      at: new Date().toISOString(),
    });
  }
}
