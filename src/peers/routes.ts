import { Hono } from "hono";
import { z } from "../zod";
import { ok } from "../http/envelope";
import { ApiError } from "../http/errors";
import { validate } from "../http/validate";
import type { Services } from "../services";

const nameParam = z.object({ name: z.string().check(z.minLength(1), z.maxLength(64, "Peer name is too long")) });

/** GET /api/peers: each peer's state, latency, models and errors. POST /api/peers/:name/check. */
export function peerRoutes(s: Services) {
  return new Hono()
    .get("/", (c) => ok(c, { instanceId: s.instanceId, peers: s.peers.snapshot() }))
    .post("/:name/check", validate("param", nameParam), async (c) => {
      const { name } = c.req.valid("param");
      if (!(await s.peers.checkNow(name))) throw new ApiError("NOT_FOUND", "Peer not found", `No peer named "${name}" in the configuration`);
      return ok(c, s.peers.snapshot().find((p) => p.name === name)!, { message: "Peer checked" });
    });
}
