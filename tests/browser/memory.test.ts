// The console's memory plan in Chromium: the Models table shows each model's need (estimate) and,
// once it ran, what llama-server measured and where it runs; next to Start a fit hint says whether
// it fits and what it would stop; in the per-model settings the hint follows the context typed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { llamaModel, writeGguf } from "../fixtures/gguf-writer";
import { hasChromium, launchBrowser, startHarness, type BrowserSession, type Harness } from "./harness";

if (!hasChromium) console.log("SKIP browser memory: /usr/bin/chromium not found (apt-get install chromium)");

const T = 60_000;

describe.skipIf(!hasChromium)("memory plan in the console", () => {
  let h: Harness;
  let browser: BrowserSession;

  beforeAll(async () => {
    h = await startHarness();
    browser = await launchBrowser();
    const s = h.server.services;
    // Room for one ~18 MiB model at a time.
    s.config.update({ ...s.config.get(), maxLoadedModels: 0, memoryLimitMiB: 30, ctx_size: 512 });
    for (const id of ["alpha", "beta"]) {
      const path = join(h.dir, `${id}.gguf`);
      writeGguf(path, llamaModel({ layers: 2, embd: 64, heads: 4, kvHeads: 4, ctx: 65536 }));
      s.registry.insert([{ id, name: id, path, size: 1, settings: { extraArgs: ["--fake-memory-mib", "16,1,1"] } }]);
    }
  }, T);

  afterAll(async () => {
    await browser?.close();
    await h?.stop();
  });

  test("need, measured and placement in the table; the fit hint beside Start says what would be stopped", async () => {
    const page = await browser.newPage();
    await page.goto(`${h.url}/models`);
    const alpha = page.locator("#model-alpha");
    await alpha.locator("[data-memory]").waitFor();
    expect(await alpha.locator("[data-memory]").textContent()).toContain("need 18");
    // Nothing runs: both fit on their own.
    // (The table may re-render between two calls: ask the resolved hint itself, not any .fit.)
    const fits = alpha.locator('.fit[data-fit="fits"]');
    await fits.waitFor({ timeout: 10_000 });
    expect(await fits.textContent()).toContain("fits on CPU");

    await alpha.locator('button[data-action="start"]').click();
    await page.locator('#model-alpha .badge[data-status="running"]').waitFor({ timeout: 20_000 });
    await page.locator("#model-alpha [data-placement]").waitFor({ timeout: 10_000 });
    const cell = await page.locator("#model-alpha [data-memory]").textContent();
    expect(cell).toContain("measured 18 MiB");
    expect(cell).toContain("on CPU");
    // Beta would now have to stop alpha.
    const hint = page.locator('#model-beta .fit[data-fit="evicts"]');
    await hint.waitFor({ timeout: 10_000 });
    expect(await hint.textContent()).toContain("stops alpha");
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);

  test("the settings editor shows the fit as the context changes", async () => {
    const page = await browser.newPage();
    await page.goto(`${h.url}/models`);
    // A live refresh of the table keeps an open editor open (console.js) and is held back while
    // someone types in it, so the editor is opened once and typed into without retries.
    await page.locator("#model-beta").waitFor();
    await page.locator("#model-beta details.settings-editor summary").click();
    const typeAndSee = async (value: string, expected: RegExp) => {
      await page.locator('#model-beta input[name="ctxSize"]').fill(value);
      await page.waitForFunction((re) => new RegExp(re).test(document.querySelector("#model-beta output")?.textContent ?? ""), expected.source, { timeout: 10_000 });
      // The hint lands in its <output>, never in the table around it (hx-target is inherited).
      expect(await page.locator("#models-table tr[data-model-id]").count()).toBe(2);
      return (await page.locator("#model-beta output").textContent()) ?? "";
    };
    expect(await typeAndSee("1024", /fits/)).toMatch(/max context [\d,]+/);
    // A context far past what 30 MiB holds (cache + mask grow 1.5 KiB per token).
    await typeAndSee("60000", /does not fit/);
    await typeAndSee("abc", /whole number/);
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);
});
