import { ApiError } from "../http/errors";
import { openAiErrorResponse } from "../http/openai";
import { upstreamRequestHeaders } from "../proxy/forward";
import { cancelledResponse, fetchUpstream, streamResponse } from "../proxy/relay";
import type { RequestOutcome } from "../proxy/stats";
import { CancelledError, type RequestHandle } from "../activity/tracker";
import type { Services } from "../services";
import { describeFetchError } from "./registry";
import type { Route } from "./resolver";

/** Statuses with which a peer says "not me, not now" before sending anything: try the next host. */
const TRY_NEXT = new Set([502, 503, 504]);

export interface PeerRequest {
  /** The client's request (headers, abort signal). */
  raw: Request;
  /** Path and query to send, as the client sent them. */
  path: string;
  /** The body, already read (the `model` field was needed to route it). */
  body: string;
  /** Parsed body (for `stream`). */
  streaming: boolean;
  /** The request's live-queue / activity entry (src/activity/tracker.ts). */
  track?: RequestHandle;
}

/**
 * Sends a request to the peers of `routes` in order and relays the first answer, streamed through
 * unbuffered by the proxy's own relay (streamResponse) (client aborts cancel the peer request, a peer that
 * dies mid-stream ends the client's stream with an SSE error event).
 *
 * A peer that cannot be reached is put in back-off and the next route is tried; so is a peer that
 * answers 502/503/504 (nothing has reached the client yet, so retrying cannot duplicate output).
 * Returns null when the next route is this instance: the caller serves the request locally.
 */
export async function relayToPeers(s: Services, routes: Route[], req: PeerRequest): Promise<Response | null> {
  const failures: string[] = [];
  // One request, one statistics entry and one activity row, however many peers it takes (a
  // fall-back to this instance is counted there, as a request of its own, after this one failed).
  let stat: ReturnType<Services["requests"]["begin"]> | undefined;
  const end = (o: RequestOutcome) => {
    stat?.end(o);
    req.track?.finish(o);
  };
  // An operator's cancel (live queue) aborts like a client disconnect, with a CancelledError.
  const cancel = req.track?.signal;
  for (let i = 0; i < routes.length; i++) {
    const route = routes[i]!;
    if (route.kind === "local") {
      end({ status: 502, error: true, message: `every peer failed: ${failures.join("; ")}; served here instead` });
      return null;
    }
    if (req.raw.signal.aborted || cancel?.aborted) {
      end({ status: 499, error: false, message: "client disconnected" });
      return cancel?.reason instanceof CancelledError ? cancelledResponse(cancel.reason) : new Response(null, { status: 499 });
    }
    const url = s.peers.urlOf(route.peer);
    if (!url) continue; // removed from the config meanwhile
    stat ??= s.requests.begin(route.modelId, req.path);
    req.track?.leased();
    const endPeer = s.peers.beginRequest(route.peer, route.modelId);
    const started = performance.now();
    const upstreamAbort = new AbortController();
    const onClientAbort = () => upstreamAbort.abort(new Error("client disconnected"));
    const onCancel = () => upstreamAbort.abort(cancel!.reason);
    req.raw.signal.addEventListener("abort", onClientAbort, { once: true });
    cancel?.addEventListener("abort", onCancel, { once: true });
    const cleanup = () => {
      req.raw.signal.removeEventListener("abort", onClientAbort);
      cancel?.removeEventListener("abort", onCancel);
    };
    const headers = s.peers.requestHeaders(route.peer, upstreamRequestHeaders(req.raw.headers), req.raw.headers.get("via"));
    let upstream: Response;
    try {
      upstream = await fetchUpstream(url + req.path, { method: "POST", headers, body: req.body }, upstreamAbort.signal);
    } catch (err) {
      cleanup();
      if (upstreamAbort.signal.aborted) {
        endPeer({ ok: true });
        const reason = upstreamAbort.signal.reason;
        end({ status: 499, error: false, message: reason instanceof CancelledError ? reason.message : "client disconnected" });
        return reason instanceof CancelledError ? cancelledResponse(reason) : new Response(null, { status: 499 });
      }
      const message = describeFetchError(err, 0);
      endPeer({ ok: false });
      s.peers.reportUnreachable(route.peer, message);
      failures.push(`${route.peer}: ${message}`);
      continue;
    }
    const hasNext = i + 1 < routes.length;
    if (TRY_NEXT.has(upstream.status) && hasNext) {
      cleanup();
      endPeer({ ok: false });
      failures.push(`${route.peer}: answered ${upstream.status}`);
      await upstream.body?.cancel().catch(() => {});
      continue;
    }
    const status = upstream.status;
    return streamResponse(upstream, {
      started,
      streaming: req.streaming,
      upstreamAbort,
      endStat: end,
      track: req.track,
      upstreamName: `peer ${route.peer}`,
      done: (failed) => {
        cleanup();
        endPeer({ ok: !failed && status < 500 });
      },
      headers: { "x-llama-proxy-peer": route.peer },
    });
  }
  const err = new ApiError("PEER_UNAVAILABLE", "No peer could serve the request", failures.join("; ") || "no peer left");
  end({ status: 502, error: true, message: `${err.message}: ${err.details}` });
  return openAiErrorResponse(err);
}
