import type { EventBus } from "../../src/events";
import type { ModelStatus } from "../../src/models/types";
import type { SupervisorDeps } from "../../src/supervisor/supervisor";
import type { ModelRuntimeInfo, ProcessState, SupervisorApi } from "../../src/supervisor/types";
import type { ServiceOverrides, Services } from "../../src/services";

/** What a running model reports in the fake (a fixed port, load time and memory). */
const RUNNING: Partial<ModelRuntimeInfo> = { loadedAt: "2026-01-01T00:00:00.000Z", port: 9001, memoryUsage: 512 };

/**
 * The one supervisor double of the test suite: runs no process, keeps each model's runtime as the
 * test sets it, and announces state changes on the bus the way the real supervisor does (status
 * "running" while stopping, as there). Pass it through createServices' / startServer's overrides
 * (`fakeSupervisorOverrides`), never by reassigning services.supervisor.
 */
export class FakeSupervisor implements SupervisorApi {
  private readonly states = new Map<string, ModelRuntimeInfo>();
  constructor(private readonly bus?: EventBus) {}

  /** Puts a model in a state, with extra runtime fields; announced as model.status. */
  set(modelId: string, state: ProcessState, extra: Partial<ModelRuntimeInfo> = {}): void {
    const status: ModelStatus = state === "stopping" ? "running" : state;
    const previous = this.states.get(modelId)?.status ?? "stopped";
    this.states.set(modelId, { modelId, state, status, restarts: 0, ...(state === "running" ? RUNNING : {}), ...extra });
    this.bus?.emit("model.status", { modelId, status, previous, at: new Date().toISOString() });
  }

  /** Reports these runtimes exactly as given (no events): what a collector test reads. */
  put(...runtimes: ModelRuntimeInfo[]): void {
    for (const r of runtimes) this.states.set(r.modelId, r);
  }

  /** The model has no runtime at all (never started). */
  forget(modelId: string): void {
    this.states.delete(modelId);
  }

  async start(modelId: string): Promise<ModelRuntimeInfo> {
    this.set(modelId, "loading");
    this.set(modelId, "running");
    return this.states.get(modelId)!;
  }
  async stop(modelId: string): Promise<void> {
    if (this.states.has(modelId)) this.set(modelId, "stopped");
  }
  async stopAll(): Promise<void> {
    for (const id of this.states.keys()) await this.stop(id);
  }
  runtimeOf(modelId: string): ModelRuntimeInfo | undefined {
    return this.states.get(modelId);
  }
  runtimes(): ModelRuntimeInfo[] {
    return [...this.states.values()];
  }
  lastHealthCheck(): string | null {
    return null;
  }
}

/** createServices / startServer overrides that put a FakeSupervisor in (on the services' bus). */
export const fakeSupervisorOverrides: ServiceOverrides = { supervisor: (deps: SupervisorDeps) => new FakeSupervisor(deps.bus) };

/** The FakeSupervisor of services built with fakeSupervisorOverrides. */
export function fakeSupervisorOf(s: Services): FakeSupervisor {
  if (!(s.supervisor instanceof FakeSupervisor)) throw new Error("these services were not built with fakeSupervisorOverrides");
  return s.supervisor;
}
