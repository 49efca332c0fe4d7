import { Hono } from "hono";
import { ok } from "../http/envelope";
import type { Services } from "../services";

/** GET /api/rpc-workers: each RPC worker's state, rpc-server, devices and the models over it. */
export function rpcWorkerRoutes(s: Services) {
  return new Hono().get("/", async (c) => ok(c, { workers: s.rpcWorkers.snapshot() }));
}
