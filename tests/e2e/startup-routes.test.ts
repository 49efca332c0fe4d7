import { afterEach, describe, expect, test } from "bun:test";
import { startProxyWithFakeLlama } from "../helpers/services";

// server.ts listens with the core app (src/core-app.ts: middlewares, error handlers,
// /api/monitoring) and adds the other routes behind the listen. These drive a real server on
// port 0 with fetch, with the unasked load pushed far away, so only a request can bring them in.
describe("routes loaded behind the listen", () => {
  let stop: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await stop?.();
    stop = null;
  });

  const start = async (routesLoadDelayMs: number) => {
    const p = await startProxyWithFakeLlama("routes", { routesLoadDelayMs });
    stop = p.stop;
    return p;
  };

  test("/api/monitoring is answered before the other routes are in", async () => {
    const { srv } = await start(60_000);
    expect(srv.routesLoaded).toBe(false);
    const res = await fetch(`${srv.url}/api/monitoring`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { success: boolean; data: { models: { total: number } } };
    expect(body.success).toBe(true);
    expect(body.data.models.total).toBe(0);
    expect(srv.routesLoaded).toBe(false);
  });

  test("requests for other routes sent at once, before they are in, get their real answers", async () => {
    const { srv, fakeModel } = await start(60_000);
    fakeModel("m1");
    expect(srv.routesLoaded).toBe(false);
    const [models, page, v1, ollama, missing] = await Promise.all([
      fetch(`${srv.url}/api/models`),
      fetch(`${srv.url}/`),
      fetch(`${srv.url}/v1/models`),
      fetch(`${srv.url}/api/tags`),
      fetch(`${srv.url}/api/nothing-here`),
    ]);
    expect(models.status).toBe(200);
    expect(((await models.json()) as { data: { models: Array<{ id: string }> } }).data.models.map((m) => m.id)).toEqual(["m1"]);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<html");
    expect(v1.status).toBe(200);
    expect(((await v1.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)).toContain("m1");
    expect(ollama.status).toBe(200);
    expect(((await ollama.json()) as { models: Array<{ name: string }> }).models.length).toBe(1);
    // An unknown path waits for the routes too, then gets the envelope's 404 (not the core's
    // answer for a path it does not know yet).
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
    expect(srv.routesLoaded).toBe(true);
  });

  test("the guard still refuses a forged Host on a route that was not in yet", async () => {
    const { srv } = await start(60_000);
    const res = await fetch(`${srv.url}/api/models`, { headers: { host: "evil.example" } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("FORBIDDEN");
  });

  test("unasked, the routes are in shortly after the listen", async () => {
    const { srv } = await start(10);
    await srv.routesReady;
    expect(srv.routesLoaded).toBe(true);
    expect((await fetch(`${srv.url}/api/health`)).status).toBe(200);
  });
});
