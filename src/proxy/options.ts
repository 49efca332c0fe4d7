// The proxy's tunables, in a module of their own: services.ts needs the defaults and the type, and
// importing them from the router made an import circle (services -> proxy/routes -> models/view ->
// services).

export interface ProxyOptions {
  /** A streaming request still waiting for its model after this long gets a 200 SSE response with keep-alive comments. */
  loadingCommentAfterMs: number;
  /** Interval between `: loading <model> Ns` comments. */
  loadingCommentEveryMs: number;
  /** Largest request body accepted for a model (images in base64 make chat bodies large). */
  maxBodyBytes: number;
}

export const DEFAULT_PROXY_OPTIONS: ProxyOptions = { loadingCommentAfterMs: 2000, loadingCommentEveryMs: 5000, maxBodyBytes: 100 * 1024 * 1024 };
