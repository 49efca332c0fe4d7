// The console in Chromium with an API key (#11: "the console in Chromium still works unchanged
// ... with a key"): the login page, then every page, the live socket (authenticated by the
// session cookie, not the key), a model start, the playground's stream through /v1, and log out.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { hasChromium, launchBrowser, startHarness, type BrowserSession, type Harness } from "./harness";

if (!hasChromium) console.log("SKIP browser auth: /usr/bin/chromium not found (apt-get install chromium)");

const T = 60_000;
const KEY = "browser-test-key-7f3a";

describe.skipIf(!hasChromium)("the console with an API key", () => {
  let h: Harness;
  let browser: BrowserSession;

  beforeAll(async () => {
    h = await startHarness({ apiKey: KEY });
    // A wrong key is a 401 page, which Chromium reports as a failed resource load: expected here.
    browser = await launchBrowser({ ignore: /status of 401/ });
    h.server.services.registry.insert([{ id: "keyed", name: "keyed", path: h.modelFile("keyed.gguf"), family: "llama", size: 17_000_000, settings: { extraArgs: ["--fake-token-delay-ms", "10"] } }]);
  }, T);

  afterAll(async () => {
    await browser?.close();
    await h?.stop();
  });

  test("log in, use every part of the console, log out", async () => {
    const page = await browser.newPage();
    // Without the session: the login form, nothing of the console, and the API refuses.
    const first = await page.goto(`${h.url}/models`);
    expect(first!.status()).toBe(401);
    expect(await page.locator("#model-keyed").count()).toBe(0);
    expect((await page.request.get(`${h.url}/api/models`)).status()).toBe(401);

    await page.fill("#login-key", "not-the-key");
    await page.click('form[action="/login"] button[type="submit"]');
    await page.locator(".field-error").waitFor();
    expect(await page.locator(".field-error").textContent()).toContain("not right");

    await page.fill("#login-key", KEY);
    await page.click('form[action="/login"] button[type="submit"]');
    await page.waitForURL(`${h.url}/models`);
    await page.locator("#model-keyed").waitFor();
    // The cookie holds a session token, never the key.
    const cookies = await browser.context.cookies(h.url);
    expect(cookies.map((c) => c.value).join(" ")).not.toContain(KEY);
    expect(cookies.find((c) => c.name === "lap_session")?.httpOnly).toBe(true);

    // The socket authenticates with the cookie: the indicator goes live.
    await page.waitForFunction(() => document.querySelector("#ws-status")?.getAttribute("data-state") === "live", null, { timeout: 10_000 });
    // A start from the table (an htmx form post) goes through, and the live update arrives.
    await page.locator('#model-keyed button[data-action="start"]').click();
    await page.locator('#model-keyed .badge[data-status="running"]').waitFor({ timeout: 20_000 });

    // The playground streams through /v1 with the same session.
    await page.goto(`${h.url}/playground`);
    await page.selectOption("#pg-model", "keyed");
    await page.fill("#pg-max", "16");
    await page.fill("#pg-message", "Hello with a key");
    await page.click("#pg-send");
    await page.locator(".chat-msg.assistant .content").waitFor({ timeout: 20_000 });
    await page.waitForFunction(() => !document.querySelector(".chat-msg.streaming"), null, { timeout: 20_000 });
    expect(await page.locator(".chat-msg.error").count()).toBe(0);
    expect(((await page.locator(".chat-msg.assistant .content").textContent()) ?? "").length).toBeGreaterThan(0);

    // Every page renders for the signed-in browser.
    for (const path of ["/", "/activity", "/monitoring", "/logs"]) {
      const res = await page.goto(h.url + path);
      expect(res!.status()).toBe(200);
    }

    // Log out from Settings: the session is revoked, pages ask for the key again.
    await page.goto(`${h.url}/settings`);
    await page.click('button[data-action="logout"]');
    await page.waitForURL(`${h.url}/login`);
    expect((await page.goto(`${h.url}/models`))!.status()).toBe(401);
    expect(await page.locator("#login-key").count()).toBe(1);
    await page.close();
    expect(browser.errors).toEqual([]);
  }, T);
});
