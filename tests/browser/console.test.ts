// The console in real Chromium against a real server whose llama-server is the fake one.
// Skipped (with a message) where /usr/bin/chromium is missing; .ci/run installs it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Page } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { metricsMinute } from "../../src/db/schema";
import { writeModel } from "../fixtures/gguf-writer";
import { FAKE_SERVER } from "./harness";
import { hasChromium, launchBrowser, screenshot, startHarness, type BrowserSession, type Harness } from "./harness";

if (!hasChromium) console.warn("tests/browser: /usr/bin/chromium not found; skipping the browser tests (apt-get install chromium)");

/** Per-test time limit: Chromium start-up plus model loads on 2 busy cores. */
const T = 90_000;
const PAGES = ["/", "/models", "/monitoring", "/logs", "/settings", "/playground"] as const;

describe.skipIf(!hasChromium)("web console in Chromium", () => {
  let h: Harness;
  let browser: BrowserSession;
  /** Whether this build serves the realtime hub (the console must work either way). */
  let hubPresent = false;

  beforeAll(async () => {
    h = await startHarness();
    const probe = await fetch(`${h.url}/llamaproxws`);
    hubPresent = probe.status !== 404;
    // Without a hub, Chromium reports each refused WebSocket handshake as a console error; that
    // is the disconnected state under test, not a page error.
    browser = await launchBrowser({ ignore: hubPresent ? undefined : /WebSocket connection to .*\/llamaproxws' failed/ });
  }, T);

  afterAll(async () => {
    await browser?.close();
    await h?.stop();
  }, T);

  const s = () => h.server.services;

  function register(id: string, settings: Record<string, unknown> = {}) {
    s().registry.insert([{ id, name: id, path: h.modelFile(`${id}.gguf`), family: "llama", size: 17_000_000, quantization: "F16", contextSize: 2048, settings }]);
  }

  async function open(path: string): Promise<Page> {
    const page = await browser.newPage();
    await page.goto(h.url + path);
    await page.waitForLoadState("load");
    await page.waitForFunction(() => typeof (window as any).htmx === "object");
    return page;
  }

  test("every page loads with no console errors (light, desktop)", async () => {
    register("tiny");
    for (const path of PAGES) {
      const page = await open(path);
      expect(await page.locator("h1").first().textContent()).toBeTruthy();
      // htmx and console.js ran.
      expect(await page.evaluate(() => typeof (window as any).htmx)).toBe("object");
      await screenshot(page, `page-${path.slice(1) || "dashboard"}-light`);
      await page.close();
    }
    expect(browser.errors).toEqual([]);
  }, T);

  test("pages fit a phone in dark mode with no console errors", async () => {
    const phone = await launchBrowser({ colorScheme: "dark", width: 390, height: 844, ignore: hubPresent ? undefined : /WebSocket connection to .*\/llamaproxws' failed/ });
    try {
      for (const path of PAGES) {
        const page = await phone.newPage();
        await page.goto(h.url + path);
        await page.waitForLoadState("load");
    await page.waitForFunction(() => typeof (window as any).htmx === "object");
        // Nothing wider than the screen: no horizontal scrolling of the page itself.
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow).toBeLessThanOrEqual(1);
        await screenshot(page, `page-${path.slice(1) || "dashboard"}-dark-phone`);
        await page.close();
      }
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.close();
    }
  }, T);

  test("a newcomer's path, all in the console: set llama-server, discover, start, chat, stop", async () => {
    const folder = join(h.dir, "my-models");
    mkdirSync(folder, { recursive: true });
    writeModel(join(folder, "newcomer-1b.Q8_0.gguf"), { arch: "llama", fileType: 7, contextLength: 4096 });

    // 1. Settings: where llama-server and the models are.
    const page = await open("/settings");
    await page.fill("#cfg-serverPath", FAKE_SERVER);
    await page.fill("#cfg-basePath", folder);
    await page.click("text=Save configuration");
    await page.locator("text=Configuration saved at").waitFor({ timeout: 10_000 });

    // 2. Models: discover the folder; the table picks the model up without a reload.
    await page.click('nav a[href="/models"]');
    await page.fill("#disc-paths", folder);
    await page.click("text=Scan");
    await page.locator(".discover-result", { hasText: "newcomer-1b.Q8_0" }).waitFor({ timeout: 10_000 });
    const id = s().registry.findByPath(join(folder, "newcomer-1b.Q8_0.gguf"))!.id;
    const row = page.locator(`tr[data-model-id="${id}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await row.getAttribute("data-status")).toBe("discovered");

    // 3. Start it.
    await row.locator('button[data-action="start"]').click();
    await page.locator(`tr[data-model-id="${id}"][data-status="running"]`).waitFor({ timeout: 20_000 });

    // 4. Use it in the playground.
    await page.click('nav a[href="/playground"]');
    await page.selectOption("#pg-model", id);
    await page.fill("#pg-max", "16");
    await page.fill("#pg-message", "Hello");
    await page.keyboard.press("Control+Enter");
    await page.waitForFunction(() => (document.querySelector("#pg-tokens")?.textContent ?? "").match(/^\d+$/), null, { timeout: 20_000 });
    expect((await page.locator(".chat-msg.assistant .content").textContent())!.length).toBeGreaterThan(0);

    // 5. Watch it on the dashboard, then stop it.
    await page.click('nav a[href="/"]');
    expect(await page.locator('[data-count="loaded"]').textContent()).toBe("1");
    await page.click('nav a[href="/models"]');
    await page.locator(`tr[data-model-id="${id}"] button[data-action="stop"]`).click();
    await page.locator(`tr[data-model-id="${id}"]:is([data-status="discovered"], [data-status="stopped"])`).waitFor({ timeout: 15_000 });
    await screenshot(page, "newcomer-done");
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);

  test("without JavaScript: pages are readable, forms post, results show", async () => {
    register("nojs", { extraArgs: ["--fake-load-ms", "100"] });
    const plain = await launchBrowser({ javaScriptEnabled: false });
    try {
      const page = await plain.newPage();
      await page.goto(h.url + "/models");
      expect(await page.locator('tr[data-model-id="nojs"] .badge').textContent()).toBe("stopped");
      // Start is a plain form post answered by a redirect back to /models.
      await page.click('tr[data-model-id="nojs"] button[data-action="start"]');
      await page.waitForURL(h.url + "/models");
      expect(["loading", "running"]).toContain((await page.locator(`tr[data-model-id="nojs"]`).getAttribute("data-status")) ?? "");
      await page.click('tr[data-model-id="nojs"] button[data-action="stop"]');
      await page.waitForURL(h.url + "/models");
      expect(await page.locator('tr[data-model-id="nojs"]').getAttribute("data-status")).toBe("stopped");
      // Remove asks on a page of its own.
      await page.click('tr[data-model-id="nojs"] button[data-action="delete"]');
      expect(await page.locator("h1").textContent()).toBe("Remove nojs?");
      await page.click("text=Cancel");
      expect(s().registry.get("nojs")).toBeDefined();
      // Settings errors next to the field, on the page that answers the post.
      await page.goto(h.url + "/settings");
      await page.fill("#cfg-threads", "0");
      await page.click("text=Save configuration");
      expect(await page.locator('[data-field-error="threads"]').textContent()).toBe("threads must be -1 (auto) or between 1 and 1024");
      // The log page shows the lines and filters by a plain GET form.
      await page.goto(h.url + "/logs?level=error");
      expect(await page.locator("#log-level").inputValue()).toBe("error");
      await screenshot(page, "no-javascript-logs");
      await page.close();
    } finally {
      await plain.close();
    }
  }, T);

  test("the connection indicator shows the socket state", async () => {
    const page = await open("/");
    const state = page.locator("#ws-status");
    if (hubPresent) {
      await page.waitForFunction(() => document.querySelector("#ws-status .label")?.textContent === "live", null, { timeout: 10_000 });
      expect(await state.getAttribute("data-state")).toBe("live");
      // Announced once for screen readers.
      expect(await page.locator("#ws-announce").textContent()).toBe("Live updates connected");
    } else {
      await page.waitForFunction(() => document.querySelector("#ws-status")?.getAttribute("data-state") === "offline", null, { timeout: 10_000 });
      expect(await state.textContent()).toContain("disconnected");
    }
    await page.close();
  }, T);

  test("a proxy restart shows 'disconnected' and the page recovers by itself", async () => {
    if (!hubPresent) console.warn("tests/browser: no realtime hub in this build; recovery is by HTTP polling only");
    const page = await open("/models");
    await page.evaluate(() => ((window as any).__sameDocument = true));
    const state = () => page.locator("#ws-status").getAttribute("data-state");
    if (hubPresent) await page.waitForFunction(() => document.querySelector("#ws-status")?.getAttribute("data-state") === "live", null, { timeout: 10_000 });
    // The rows' fit hints load once the table is shown; restart only when they have (a hint
    // still queued would be refused while the server is down: a console error in a later test).
    await page.waitForFunction(() => document.querySelector('#models-table [data-fit="pending"]') === null, null, { timeout: 10_000 });
    await h.restart();
    await page.waitForFunction(() => document.querySelector("#ws-status")?.getAttribute("data-state") !== "live", null, { timeout: 10_000 });
    expect(await page.locator("#ws-status").textContent()).toMatch(/disconnected|connecting/);
    // A model registered while the page was cut off shows up without a reload.
    register("after-restart");
    if (hubPresent) {
      await page.waitForFunction(() => document.querySelector("#ws-status")?.getAttribute("data-state") === "live", null, { timeout: 20_000 });
      expect(await state()).toBe("live");
    }
    await page.locator("#model-after-restart").waitFor({ timeout: 20_000 });
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    await page.close();
    // While the proxy was down, a refresh that ran into the closed port is reported by Chromium
    // and htmx as console errors: that is the outage under test, not a page error. Anything else
    // logged meanwhile still fails the suite.
    const outage = /ERR_CONNECTION_REFUSED|htmx:sendError|htmx:afterRequest/;
    const other = browser.errors.filter((e) => !outage.test(e));
    browser.errors.splice(0, browser.errors.length, ...other);
  }, T);

  test("start a model from the Models page: badge goes loading -> running without a reload", async () => {
    register("slowload", { extraArgs: ["--fake-load-ms", "2500"] });
    const page = await open("/models");
    await page.evaluate(() => ((window as any).__sameDocument = true));
    const row = page.locator("#model-slowload");
    expect(await row.locator(".badge").textContent()).toBe("stopped");
    await row.locator('button[data-action="start"]').click();
    await row.locator('.badge[data-status="loading"]').waitFor({ timeout: 10_000 });
    // Progress shows while it loads.
    await row.locator(".progress").waitFor({ timeout: 5_000 });
    await screenshot(page, "models-loading");
    await page.locator('#model-slowload .badge[data-status="running"]').waitFor({ timeout: 20_000 });
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    expect(s().supervisor.runtimeOf("slowload")?.state).toBe("running");
    await screenshot(page, "models-running");
    // And stop it again from the same page.
    await page.locator('#model-slowload button[data-action="stop"]').click();
    await page.locator('#model-slowload .badge[data-status="stopped"]').waitFor({ timeout: 15_000 });
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);

  test("stop while a model loads: the row's buttons act on the table, not on the polling row", async () => {
    register("stopme", { extraArgs: ["--fake-load-ms", "10000"] });
    const page = await open("/models");
    await page.locator('#model-stopme button[data-action="start"]').click();
    await page.locator('#model-stopme[data-status="loading"]').waitFor({ timeout: 10_000 });
    // Let the row poll at least once, then stop from the polling row.
    await page.waitForFunction(() => document.querySelector("#model-stopme [data-elapsed-since]") !== null, null, { timeout: 5_000 });
    await page.locator('#model-stopme button[data-action="stop"]').click();
    await page.locator('#model-stopme[data-status="stopped"]').waitFor({ timeout: 15_000 });
    expect(await page.locator("#models-table").count()).toBe(1);
    expect(await page.locator("#model-stopme").count()).toBe(1);
    expect(await page.locator("#models-table table").count()).toBe(1);
    await page.close();
  }, T);

  test("a failed start shows its error and the last log lines", async () => {
    register("broken", { extraArgs: ["--fake-fail-load"] });
    const page = await open("/models");
    await page.locator('#model-broken button[data-action="start"]').click();
    const error = page.locator("#model-broken .model-error");
    await error.waitFor({ timeout: 20_000 });
    expect(await page.locator("#model-broken .badge").getAttribute("data-status")).toBe("error");
    expect(await error.textContent()).toContain("Start failed");
    const tail = await page.locator("#model-broken .log-tail").textContent();
    expect(tail?.trim().length).toBeGreaterThan(0);
    await screenshot(page, "models-failed-start");
    await page.close();
  }, T);

  test("remove asks for confirmation, then the row goes", async () => {
    register("doomed");
    const page = await open("/models");
    let asked = "";
    page.once("dialog", (d) => {
      asked = d.message();
      void d.accept();
    });
    await page.locator('#model-doomed button[data-action="delete"]').click();
    await page.locator("#model-doomed").waitFor({ state: "detached", timeout: 10_000 });
    expect(asked).toContain("Remove doomed");
    expect(s().registry.get("doomed")).toBeUndefined();
    await page.close();
    // A hint the removed row had asked for may answer after it went: never as an error.
    expect(browser.errors).toEqual([]);
  }, T);

  test("saving an invalid config shows the field error; a valid one is confirmed", async () => {
    const page = await open("/settings");
    await page.fill("#cfg-port", "70000");
    await page.click("text=Save configuration");
    const err = page.locator('[data-field-error="port"]');
    await err.waitFor({ timeout: 10_000 });
    expect(await err.textContent()).toBe("Port must be between 1 and 65535");
    expect(await page.getAttribute("#cfg-port", "aria-invalid")).toBe("true");
    // The keyboard lands on the field to fix.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("cfg-port");
    await screenshot(page, "settings-invalid");
    await page.fill("#cfg-port", "8555");
    await page.click("text=Save configuration");
    await page.locator("text=Configuration saved at").waitFor({ timeout: 10_000 });
    expect(s().config.get().port).toBe(8555);
    await page.close();
  }, T);

  test("a model's row shows its live requests (running, waiting) from the pushes, and clears when they end", async () => {
    if (!hubPresent) return console.warn("tests/browser: no realtime hub in this build; the row's queue refreshes with the table only");
    // A slow load: both requests wait for it, then both stream.
    register("row-queue", { extraArgs: ["--fake-load-ms", "1500", "--fake-token-delay-ms", "40"] });
    const page = await open("/models");
    await page.evaluate(() => ((window as any).__sameDocument = true));
    await page.waitForFunction(() => document.querySelector("#ws-status")?.getAttribute("data-state") === "live", null, { timeout: 10_000 });
    const badge = page.locator("#queue-row-queue");
    expect(await badge.textContent()).toBe("");
    const ask = () =>
      fetch(`${h.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "row-queue", stream: true, max_tokens: 40, messages: [{ role: "user", content: "hi" }] }),
      }).then((r) => r.text());
    const answers = Promise.all([ask(), ask()]);
    // Both appear on the row without a reload: waiting while the model loads, then running.
    const counts = (running: number, queued: number) =>
      page.waitForFunction(([r, q]) => {
        const b = document.querySelector("#queue-row-queue");
        return Number(b?.getAttribute("data-running")) === r && Number(b?.getAttribute("data-queued")) === q;
      }, [running, queued], { timeout: 20_000 });
    await counts(0, 2);
    expect(await badge.textContent()).toBe("2 waiting");
    await counts(2, 0);
    expect(await badge.textContent()).toBe("2 running");
    expect(await badge.locator("a").getAttribute("href")).toBe("/activity?model=row-queue");
    await screenshot(page, "models-row-queue");
    for (const text of await answers) expect(text).toContain("[DONE]");
    await page.waitForFunction(() => document.querySelector("#queue-row-queue")?.textContent === "", null, { timeout: 15_000 });
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);

  test("a request shows in the dashboard's queue and, once done, as a new Activity row, both without a reload or a poll", async () => {
    if (!hubPresent) return console.warn("tests/browser: no realtime hub in this build; the queue refreshes by the fallback poll only");
    register("queue-live", { extraArgs: ["--fake-token-delay-ms", "60"] });
    const dashboard = await open("/");
    const activity = await open("/activity");
    for (const page of [dashboard, activity]) {
      await page.evaluate(() => ((window as any).__sameDocument = true));
      await page.waitForFunction(() => document.querySelector("#ws-status")?.getAttribute("data-state") === "live", null, { timeout: 10_000 });
    }
    // Only pushes refresh these parts while the socket is up (the fallback poll runs only while
    // it is down): count the fragment requests to prove they follow the pushes.
    const fragments: string[] = [];
    dashboard.on("request", (r) => { if (r.url().includes("/ui/requests/live")) fragments.push(r.url()); });
    expect(await activity.locator('#activity-table tr[data-request-id="browser-live-1"]').count()).toBe(0);

    const done = fetch(`${h.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "browser-live-1" },
      body: JSON.stringify({ model: "queue-live", stream: true, max_tokens: 60, messages: [{ role: "user", content: "hi" }] }),
    }).then((r) => r.text());
    const queued = dashboard.locator('#live-queue tr[data-request-id="browser-live-1"]');
    await queued.waitFor({ timeout: 15_000 });
    await screenshot(dashboard, "dashboard-live-queue");
    // Its age in seconds, as the console's one-second ticker writes it between pushes.
    expect(await queued.locator("[data-elapsed-since]").textContent()).toMatch(/^\d+s$/);
    expect(await done).toContain("[DONE]");
    // Ended: the queue empties by itself, and the Activity page has the new row.
    await queued.waitFor({ state: "detached", timeout: 15_000 });
    const row = activity.locator('#activity-table tr[data-request-id="browser-live-1"]');
    await row.waitFor({ timeout: 15_000 });
    expect(await row.getAttribute("data-status")).toBe("200");
    expect(await row.locator("td").nth(1).textContent()).toBe("queue-live");
    // The speed chart's time axis spans the chosen range (24 h), ending now, not years.
    await activity.waitForFunction(() => document.querySelector("#activity-chart")?.hasAttribute("data-x-range"), null, { timeout: 10_000 });
    const [from, to] = (await activity.locator("#activity-chart").getAttribute("data-x-range"))!.split(",").map(Number);
    expect(to! - from!).toBe(24 * 3600);
    expect(Math.abs(to! - Date.now() / 1000)).toBeLessThan(120);
    for (const page of [dashboard, activity]) expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    expect(fragments.length).toBeGreaterThanOrEqual(2);
    await dashboard.close();
    await activity.close();
    expect(browser.errors).toEqual([]);
  }, T);

  test("a captured request's bodies open from its Activity row and stay open while new rows arrive", async () => {
    if (!hubPresent) return console.warn("tests/browser: no realtime hub in this build; skipping the live capture check");
    register("capture-live");
    s().config.update({ ...s().config.get(), captureMaxMB: 1 });
    try {
      const page = await open("/activity");
      await page.waitForFunction(() => document.querySelector("#ws-status")?.getAttribute("data-state") === "live", null, { timeout: 10_000 });
      const ask = (id: string, content: string) =>
        fetch(`${h.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-request-id": id },
          body: JSON.stringify({ model: "capture-live", max_tokens: 3, messages: [{ role: "user", content }] }),
        }).then((r) => r.text());
      await ask("browser-cap-1", "<b>not bold</b>");
      await page.locator('#activity-table tr[data-request-id="browser-cap-1"]').waitFor({ timeout: 15_000 });
      const row = page.locator('#activity-table tr[data-capture-for="browser-cap-1"]');
      await row.locator("details.capture summary").click();
      const view = row.locator(".capture-view");
      await view.waitFor({ timeout: 10_000 });
      // The body's markup is shown as text, not rendered.
      expect(await view.locator("pre").first().textContent()).toContain("<b>not bold</b>");
      expect(await view.locator("b").count()).toBe(0);
      await screenshot(page, "activity-capture");
      // A new request refreshes the table; the opened disclosure stays open with its bodies.
      await ask("browser-cap-2", "second");
      await page.locator('#activity-table tr[data-request-id="browser-cap-2"]').waitFor({ timeout: 15_000 });
      expect(await row.locator("details.capture").getAttribute("open")).not.toBeNull();
      expect(await row.locator(".capture-view pre").first().textContent()).toContain("<b>not bold</b>");
      await page.close();
      expect(browser.errors).toEqual([]);
    } finally {
      s().config.update({ ...s().config.get(), captureMaxMB: 0 });
    }
  }, T);

  test("the log tail receives a new line live", async () => {
    const page = await open("/logs");
    const marker = `live line ${Math.random().toString(36).slice(2)}`;
    s().log.warn(marker);
    await page.locator("#log-lines li", { hasText: marker }).waitFor({ timeout: 15_000 });
    await screenshot(page, "logs-live");
    await page.close();
  }, T);

  test("pausing the log tail holds new lines back and counts them; resume shows them", async () => {
    const page = await open("/logs");
    await page.click("#log-pause");
    expect(await page.getAttribute("#log-pause", "aria-pressed")).toBe("true");
    const held = `held line ${Math.random().toString(36).slice(2)}`;
    s().log.info(held);
    await page.waitForFunction(() => /Resume \(\d+ new\)/.test(document.querySelector("#log-pause")?.textContent ?? ""), null, { timeout: 15_000 });
    expect(await page.locator("#log-lines li", { hasText: held }).count()).toBe(0);
    await page.click("#log-pause");
    await page.locator("#log-lines li", { hasText: held }).waitFor({ timeout: 10_000 });
    expect(await page.locator("#log-pause").textContent()).toBe("Pause");
    // A filter narrows the tail and the download link follows it.
    await page.fill("#log-q", held);
    await page.waitForFunction(() => (document.querySelector("#log-download")?.getAttribute("href") ?? "").includes("q=held"), null, { timeout: 10_000 });
    expect(await page.locator("#log-lines li").count()).toBe(1);
    await page.close();
  }, T);

  test("an empty chart's time axis spans the chosen range, ending now", async () => {
    // The page with no history at all (a fresh install): the date under the first tick once read
    // "8/27/29" on 2026-12-01. The 6-hour range gets no live points, so emptying the embedded
    // history and redrawing is that page.
    const page = await open("/monitoring?range=6h");
    await page.evaluate(() => {
      const charts = document.getElementById("charts")!;
      document.getElementById("history-data")!.setAttribute("data-history", JSON.stringify({ metrics: [] }));
      for (const el of charts.querySelectorAll("[data-x-range]")) el.removeAttribute("data-x-range");
      document.dispatchEvent(new CustomEvent("htmx:load", { detail: { elt: charts } }));
    });
    await page.waitForFunction(() => document.querySelector("#chart-cpu")?.getAttribute("data-x-range"), null, { timeout: 10_000 });
    expect(await page.locator("#chart-cpu").getAttribute("data-points")).toBe("0");
    const [min, max] = (await page.locator("#chart-cpu").getAttribute("data-x-range"))!.split(",").map(Number);
    const now = Date.now() / 1000;
    expect(Math.abs(max! - now)).toBeLessThan(300);
    expect(Math.abs(max! - min! - 6 * 3600)).toBeLessThan(60);
    // Ticks that carry a date (uPlot's M/D/YY or M/D) show a day inside the range, in the
    // browser's time zone: today or, early in the morning, yesterday.
    const labels = (await page.locator("#chart-cpu").getAttribute("data-x-labels"))!.split("|");
    const days = await page.evaluate(() =>
      [new Date(), new Date(Date.now() - 6 * 3600_000)].flatMap((d) => [`${d.getMonth() + 1}/${d.getDate()}/${String(d.getFullYear()).slice(2)}`, `${d.getMonth() + 1}/${d.getDate()}`]),
    );
    const dated = labels.filter((l) => l.includes("\n")).map((l) => l.split("\n")[1]!);
    expect(dated.length).toBeGreaterThan(0);
    for (const d of dated) expect(days).toContain(d);
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);

  test("a chart with a single point: the time axis still spans the chosen range, ending now", async () => {
    // uPlot hands the range function a widened max for one point (years ahead): the axis then
    // ran to 2029 and its first tick read a date years off.
    const page = await open("/monitoring?range=6h");
    const t = Math.floor(Date.now() / 60_000) * 60 - 600;
    await page.evaluate((ts) => {
      const charts = document.getElementById("charts")!;
      const point = { timestamp: new Date(ts * 1000).toISOString(), cpu: { avg: 12, max: 20 }, memory: { avg: 40, max: 41 }, requests: 1 };
      document.getElementById("history-data")!.setAttribute("data-history", JSON.stringify({ metrics: [point] }));
      for (const el of charts.querySelectorAll("[data-x-range]")) el.removeAttribute("data-x-range");
      document.dispatchEvent(new CustomEvent("htmx:load", { detail: { elt: charts } }));
    }, t);
    await page.waitForFunction(() => document.querySelector("#chart-cpu")?.getAttribute("data-x-range"), null, { timeout: 10_000 });
    expect(await page.locator("#chart-cpu").getAttribute("data-points")).toBe("1");
    const [min, max] = (await page.locator("#chart-cpu").getAttribute("data-x-range"))!.split(",").map(Number);
    expect(Math.abs(max! - Date.now() / 1000)).toBeLessThan(300);
    expect(Math.abs(max! - min! - 6 * 3600)).toBeLessThan(60);
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);

  test("the monitoring chart draws seeded history", async () => {
    const probe = await fetch(`${h.url}/api/monitoring/history?hours=1&resolution=1m`);
    if (probe.status === 404) {
      console.warn("tests/browser: GET /api/monitoring/history is not in this build; seeding cannot be drawn");
    }
    expect(probe.status).toBe(200);
    const now = Math.floor(Date.now() / 60_000) * 60_000;
    const rows = Array.from({ length: 30 }, (_, i) => ({
      ts: now - (30 - i) * 60_000,
      samples: 6,
      cpuAvg: 20 + 10 * Math.sin(i / 4),
      cpuMax: 40,
      memAvg: 50 + i / 3,
      memMax: 60,
      gpuUtilAvg: 70,
      gpuUtilMax: 90,
      gpuMemAvg: 30,
      gpuMemMax: 35,
      requests: i % 5,
      errors: 0,
      responseTimeAvg: 200 + i,
      tokensPerSecond: 100 + i,
      promptTokens: 10,
      completionTokens: 20,
    }));
    // The collector writes the minute rows of this run too; a seeded minute it already wrote
    // keeps the collector's row (the chart still has a point there).
    s().db.insert(metricsMinute).values(rows).onConflictDoNothing().run();
    const page = await open("/monitoring?range=1h");
    const plot = page.locator("#chart-cpu");
    await page.waitForFunction(() => Number(document.querySelector("#chart-cpu")?.getAttribute("data-points") ?? 0) > 0, null, { timeout: 10_000 });
    expect(Number(await plot.getAttribute("data-points"))).toBeGreaterThanOrEqual(30);
    expect(await page.locator("#chart-cpu canvas").count()).toBe(1);
    // Live samples (metrics_update over the socket) extend the 1-hour chart.
    if (hubPresent) {
      const drawn = Number(await plot.getAttribute("data-points"));
      await page.waitForFunction((n) => Number(document.querySelector("#chart-cpu")?.getAttribute("data-points") ?? 0) > n, drawn, { timeout: 15_000 });
    }
    // Switching range re-draws from the history API.
    await page.click('a[href="/monitoring?range=6h"]');
    await page.waitForFunction(() => document.querySelector("#charts")?.getAttribute("data-range") === "6h" && Number(document.querySelector("#chart-cpu")?.getAttribute("data-points") ?? 0) > 0, null, { timeout: 10_000 });
    expect(page.url()).toBe(h.url + "/monitoring?range=6h");
    // Back restores the 1-hour view, charts drawn again.
    await page.goBack();
    await page.waitForFunction(() => document.querySelector("#charts")?.getAttribute("data-range") === "1h" && Number(document.querySelector("#chart-cpu")?.getAttribute("data-points") ?? 0) > 0, null, { timeout: 10_000 });
    await screenshot(page, "monitoring-seeded");
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);

  test("the playground streams an answer with time to first token and tokens/s", async () => {
    register("chatty", { extraArgs: ["--fake-token-delay-ms", "20"] });
    const page = await open("/playground");
    await page.selectOption("#pg-model", "chatty");
    await page.fill("#pg-temp", "0");
    await page.fill("#pg-max", "32");
    await page.fill("#pg-message", "Say something");
    await page.click("#pg-send");
    const answer = page.locator(".chat-msg.assistant .content");
    await answer.waitFor({ timeout: 20_000 });
    await page.waitForFunction(() => !document.querySelector(".chat-msg.streaming") && (document.querySelector("#pg-tps")?.textContent ?? "") !== "…", null, { timeout: 30_000 });
    expect((await answer.textContent())!.length).toBeGreaterThan(0);
    expect(await page.locator("#pg-ttft").textContent()).toMatch(/^\d+ ms$/);
    expect(await page.locator("#pg-tps").textContent()).toMatch(/^\d+(\.\d)?$/);
    await screenshot(page, "playground-answer");
    if (browser.errors.length) console.error("console errors:", browser.errors);
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);

  test("the playground shows the proxy's error when the model cannot load", async () => {
    register("wontload", { extraArgs: ["--fake-fail-load"] });
    const page = await open("/playground");
    await page.selectOption("#pg-model", "wontload");
    await page.fill("#pg-message", "Hello?");
    await page.click("#pg-send");
    const error = page.locator(".chat-msg.error .content");
    await error.waitFor({ timeout: 20_000 });
    expect((await error.textContent())!.length).toBeGreaterThan(10);
    // Ready for the next message.
    expect(await page.locator("#pg-send").isDisabled()).toBe(false);
    await screenshot(page, "playground-error");
    await page.close();
  }, T);

  test("request rewriting edited in the settings editor reaches llama-server; a bad rule is a field error", async () => {
    register("rw", { extraArgs: ["--fake-load-ms", "50"] });
    // Only this test's console errors (the one before logs its expected 503).
    const errorsBefore = browser.errors.length;
    const page = await open("/models");
    const row = page.locator("#model-rw");
    await row.locator("details.settings-editor summary").click();
    await row.locator('input[name="strip"]').fill("n_predict");
    await row.locator('textarea[name="defaults"]').fill('{"max_tokens": 2}');
    await row.locator('textarea[name="overrides"]').fill('{"temperature": 0.125}');
    await row.locator('button:has-text("Save settings")').click();
    // The saved rules come back as the API stores them (compact JSON): the answer or a live
    // refresh of the table, both show them.
    await page.waitForFunction(() => (document.querySelector('#model-rw textarea[name="overrides"]') as HTMLTextAreaElement | null)?.value === '{"temperature":0.125}', null, { timeout: 10_000 });
    expect(s().registry.get("rw")!.settings.rewrite).toEqual({ defaults: { max_tokens: 2 }, overrides: { temperature: 0.125 }, strip: ["n_predict"] });

    // A proxied request (the model loads on demand): the fake llama-server answers with what it
    // received: temperature overridden, n_predict stripped so the default max_tokens applies.
    const ask = async () => {
      const res = await fetch(`${h.url}/completion`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "rw", prompt: "hi", temperature: 0.9, n_predict: 7 }) });
      expect(res.status).toBe(200);
      return (await res.json()) as { tokens_predicted: number; generation_settings: { temperature: number } };
    };
    const answer = await ask();
    expect(answer.generation_settings.temperature).toBe(0.125);
    expect(answer.tokens_predicted).toBe(2);

    // Bad values: JSON that does not parse, and a rule the API refuses. Each shows next to its
    // field, the typed text stays, the first refused field gets the focus, nothing is saved.
    // The editor stayed open through the live refreshes of the load (console.js keeps it open).
    expect(await page.locator("#model-rw details.settings-editor").evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    await row.locator('textarea[name="defaults"]').fill('{"max_tokens": ');
    await row.locator('textarea[name="overrides"]').fill('{"model": "other"}');
    await row.locator('button:has-text("Save settings")').click();
    const overridesError = page.locator('#model-rw [data-field-error="overrides"]');
    await overridesError.waitFor({ timeout: 10_000 });
    expect(await overridesError.textContent()).toBe("rewrite.overrides: the model parameter cannot be rewritten (the proxy routes by it)");
    expect(await page.locator('#model-rw [data-field-error="defaults"]').textContent()).toStartWith("Defaults: not valid JSON (");
    expect(await page.locator('#model-rw textarea[name="overrides"]').getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator('#model-rw textarea[name="defaults"]').inputValue()).toBe('{"max_tokens": ');
    expect(await page.evaluate(() => document.activeElement?.getAttribute("name"))).toBe("defaults");
    // The error went into the row's own editor: the table is still one table.
    expect(await page.locator("#models-table").count()).toBe(1);
    await screenshot(page, "models-rewrite-field-error");
    expect(s().registry.get("rw")!.settings.rewrite).toEqual({ defaults: { max_tokens: 2 }, overrides: { temperature: 0.125 }, strip: ["n_predict"] });
    expect((await ask()).generation_settings.temperature).toBe(0.125);
    await page.close();
    await s().pool.stop("rw");
    expect(browser.errors.slice(errorsBefore)).toEqual([]);
  }, T);
});
