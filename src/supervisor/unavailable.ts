import { ApiError } from "../http/errors";
import type { ModelRuntimeInfo, SupervisorApi } from "./types";

/** Placeholder until the process supervisor lands: nothing runs, starting says why. */
export class NoSupervisor implements SupervisorApi {
  async start(): Promise<ModelRuntimeInfo> {
    throw new ApiError("SERVICE_UNAVAILABLE", "Model supervision is not available in this build");
  }
  async stop(): Promise<void> {}
  async stopAll(): Promise<void> {}
  runtimeOf(): ModelRuntimeInfo | undefined { return undefined; }
  runtimes(): ModelRuntimeInfo[] { return []; }
  lastHealthCheck(): string | null { return null; }
}
