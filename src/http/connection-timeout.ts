import type { Server } from "bun";

/**
 * Idle connections are closed after `idleTimeoutSeconds` (Bun.serve's idleTimeout): a client that
 * opens a keep-alive connection and goes quiet, or a half-open socket, no longer holds a socket
 * for ever (finding 10 of #11; the proxy used to run with idleTimeout 0). Connections that never
 * send a complete request are closed by Bun itself after ~10 s whatever idleTimeout says
 * (measured with raw sockets, Bun 1.4.5).
 *
 * But that timer counts inactivity on the socket, and a request being worked on can be silent
 * for minutes: prompt processing of a long context, a model loading behind POST
 * /api/models/:id/start, a non-streaming generation (llama-server sends nothing until it is
 * done). So while a handler runs, its request's timeout is lifted (server.timeout(req, 0)), and
 * it is put back when the handler has answered, or, for a response that keeps streaming after
 * its handler returned (the proxy relay's SSE), when that stream ends. Bun also resets a
 * connection's timeout to the server's on its next request, so a keep-alive connection that
 * carried a long request is bounded again from the next one on.
 */
const restorers = new WeakMap<Request, () => void>();

/** server.ts, before the handler: lift the idle timeout of this request's connection. */
export function liftIdleTimeout(req: Request, server: Server<unknown>, idleTimeoutSeconds: number): void {
  if (idleTimeoutSeconds <= 0) return;
  server.timeout(req, 0);
  restorers.set(req, () => {
    try {
      server.timeout(req, idleTimeoutSeconds);
    } catch {
      // The connection is already gone.
    }
  });
}

/** server.ts, once the handler has answered: restore now, unless the response took it over. */
export function restoreIdleTimeout(req: Request): void {
  const restore = restorers.get(req);
  restorers.delete(req);
  restore?.();
}

/**
 * For a response that keeps streaming after its handler returned: returns the function to call
 * when the stream has ended (idempotent). Until then the connection stays without idle timeout.
 */
export function keepIdleTimeoutLifted(req: Request): () => void {
  const restore = restorers.get(req);
  restorers.delete(req);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    restore?.();
  };
}
