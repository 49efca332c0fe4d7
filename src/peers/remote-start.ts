import { ApiError, ERROR_STATUS, type ErrorCode } from "../http/errors";
import type { Services } from "../services";

/**
 * POST /api/models/:id/start for a model that another instance of this product (a peer) runs
 * itself: the start is sent there, with that peer's API key, and its answer (the model as the
 * peer shows it) comes back with `peer` added. Undefined when no peer has the model.
 */
export async function startOnPeer(s: Pick<Services, "peers">, id: string, wait: boolean): Promise<{ status: 200 | 202; data: Record<string, unknown>; message: string } | undefined> {
  const found = s.peers.productModel(id);
  if (!found) return undefined;
  const url = s.peers.urlOf(found.peer)!;
  // JSON content type even without a body: the peer's request guard refuses any other POST.
  const headers = s.peers.requestHeaders(found.peer, new Headers({ "content-type": "application/json" }), null);
  let res: Response;
  try {
    res = await fetch(`${url}/api/models/${encodeURIComponent(id)}/start${wait ? "" : "?wait=false"}`, { method: "POST", headers, redirect: "manual" });
  } catch (err) {
    s.peers.reportUnreachable(found.peer, (err as Error).message);
    throw new ApiError("SERVICE_UNAVAILABLE", `Peer ${found.peer} could not be reached`, (err as Error).message);
  }
  let body: { success?: boolean; data?: unknown; message?: string; error?: { code?: string; message?: string; details?: string } };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new ApiError("SERVICE_UNAVAILABLE", `Peer ${found.peer} answered ${res.status} without an API envelope`);
  }
  void s.peers.checkNow(found.peer); // its status changed: refresh what we show
  if (!body.success) {
    const code = (body.error?.code && body.error.code in ERROR_STATUS ? body.error.code : "SERVICE_UNAVAILABLE") as ErrorCode;
    throw new ApiError(code, `Peer ${found.peer}: ${body.error?.message ?? `answered ${res.status}`}`, body.error?.details);
  }
  const data = typeof body.data === "object" && body.data !== null ? (body.data as Record<string, unknown>) : {};
  return { status: res.status === 202 ? 202 : 200, data: { ...data, peer: found.peer }, message: body.message ?? "Model started" };
}
