// The console's Activity page, its fragments and the Cancel button, through createApp().request().
import { afterEach, beforeEach, expect, test } from "bun:test";
import { chartData } from "../../src/console/activity";
import { makeTestServices, type TestContext } from "../helpers/services";

let t: TestContext;
beforeEach(() => {
  t = makeTestServices();
});
afterEach(async () => {
  await t.cleanup();
});

const begin = (model: string, running = true) =>
  t.services.tracker.begin({ requestId: null, model, route: "/v1/chat/completions", streaming: true, client: "127.0.0.1", keyName: "team", sessionId: null, rewritten: [], modelRunning: running });

test("the Activity page: rows with tokens and speeds, totals per model and key, the live queue, the chart data", async () => {
  const done = begin("qwen");
  done.leased();
  done.finish({ status: 200, promptTokens: 12, cachedTokens: 3, completionTokens: 40, ttftMs: 80, predictedPerSecond: 55.5, promptPerSecond: 900 });
  t.services.tracker.rejected({ requestId: null, model: "nope", route: "/v1/chat/completions", streaming: false, client: null, keyName: null, sessionId: null, rewritten: [] }, { status: 404, error: true, message: "The model 'nope' does not exist" });
  const waiting = begin("qwen", false);

  const res = await t.app.request("/activity");
  expect(res.status).toBe(200);
  const html = await res.text();
  expect(html).toContain("<h1>Activity</h1>");
  expect(html).toContain('aria-current="page">Activity<');
  // The finished request with its tokens and speed; the refused one with its reason.
  expect(html).toMatch(/<td class="num">40<\/td>[\s\S]*<td class="num">55.5<\/td>/);
  expect(html).toContain("The model &#39;nope&#39; does not exist");
  // Totals per key.
  expect(html).toMatch(/<td>team<\/td><td class="num">1<\/td>/);
  // The waiting request, with a Cancel form for it.
  expect(html).toContain(`data-request-id="${waiting.id}"`);
  expect(html).toContain(`hx-post="/ui/requests/${waiting.id}/cancel"`);
  expect(html).toContain("/static/activity.js?v=");

  const live = await (await t.app.request("/ui/activity/live?model=qwen&hours=1")).text();
  expect(live).toContain('id="activity-live"');
  // The request list follows the filter (the totals cover every model in the range).
  expect(live.split('id="activity-table"')[1]).not.toContain("nope");
  expect(live.split('id="activity-table"')[1]).toContain("qwen");
  const js = await t.app.request("/static/activity.js");
  expect(js.status).toBe(200);
  expect(await js.text()).toContain("uPlot");
});

test("Cancel from the console cancels the request and answers the refreshed queue", async () => {
  const waiting = begin("qwen", false);
  const res = await t.app.request(`/ui/requests/${waiting.id}/cancel`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: "http://localhost", "hx-request": "true" },
    body: "",
  });
  expect(res.status).toBe(200);
  expect(waiting.signal.aborted).toBe(true);
  // Until the relay finishes it, it is still listed; once finished it is gone.
  waiting.finish({ status: 499, error: false, message: "cancelled" });
  const queue = await (await t.app.request("/ui/requests/live")).text();
  expect(queue).toContain("No request is queued, loading or running.");
  // From another site the form post is refused (the request guard).
  const other = begin("qwen", false);
  const forged = await t.app.request(`/ui/requests/${other.id}/cancel`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: "http://evil.example" },
    body: "",
  });
  expect(forged.status).toBe(403);
  expect(other.signal.aborted).toBe(false);
});

test("the dashboard shows the live queue", async () => {
  const r = begin("qwen", false);
  const html = await (await t.app.request("/")).text();
  expect(html).toContain('id="live-queue"');
  expect(html).toContain(r.id);
});

test("chartData: tokens/s points per model, oldest first, rows without a speed left out", () => {
  const e = (time: string, model: string | null, genTps: number | null) => ({ time, model, genTps }) as never;
  expect(chartData([e("2026-01-01T00:00:02Z", "b", 20), e("2026-01-01T00:00:01Z", "a", 10), e("2026-01-01T00:00:03Z", "a", null), e("2026-01-01T00:00:04Z", null, 5)])).toEqual({
    models: ["a", "b"],
    points: [[1767225601, "a", 10], [1767225602, "b", 20]],
  });
});

test("a captured row has a Bodies disclosure; its fragment shows the bodies escaped; without a capture, none", async () => {
  t.services.config.update({ ...t.services.config.get(), captureMaxMB: 1 });
  const done = begin("qwen");
  done.leased();
  const res = t.services.captures.capture(
    { requestId: done.id, route: "/v1/chat/completions", model: "qwen", requestContentType: "application/json" },
    '{"messages":[{"role":"user","content":"<script>alert(1)</script>"}]}',
    new Response('{"content":"<img src=x onerror=alert(2)>"}', { headers: { "content-type": "application/json" } }),
  );
  await res.text();
  done.finish({ status: 200, completionTokens: 1 });
  const other = begin("qwen");
  other.finish({ status: 200 });

  const live = await (await t.app.request("/ui/activity/live")).text();
  // The row is followed by its capture row (full width); a row without a capture has none.
  const afterRow = (id: string) => live.split(`data-request-id="${id}"`)[1]!.split("</tr>").slice(1, 2).join("");
  expect(afterRow(done.id)).toContain(`data-capture-for="${done.id}"`);
  expect(afterRow(done.id)).toContain(`hx-get="/ui/activity/${done.id}/capture"`);
  expect(afterRow(done.id)).toContain("hx-preserve");
  expect(afterRow(done.id)).toContain('hx-target="find .capture-slot"');
  expect(live).not.toContain(`data-capture-for="${other.id}"`);

  const fragment = await (await t.app.request(`/ui/activity/${done.id}/capture`, { headers: { "hx-request": "true" } })).text();
  expect(fragment).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
  expect(fragment).toContain("&lt;img src=x onerror=alert(2)&gt;");
  expect(fragment).not.toContain("<script>alert");
  expect(fragment).not.toContain("<img");
  expect(fragment).not.toContain("<html");
  // Without htmx (no JavaScript) it is a page of its own; an unknown id is a 404 page.
  const page = await t.app.request(`/ui/activity/${done.id}/capture`);
  expect(await page.text()).toContain("<h1>Capture</h1>");
  expect((await t.app.request("/ui/activity/nope/capture")).status).toBe(404);
});
