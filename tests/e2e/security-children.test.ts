// Finding 2 of #11: llama-server children were open. Each child now has its own random key; a
// direct request to its port without it gets 401, while the proxy, /upstream, the metrics
// collector and the health checks add it. Runs against the fake llama-server always, and against
// the real one when LLAMA_SERVER_BIN and LLAMA_TEST_MODEL are set.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startServer, type RunningServer } from "../../src/server";
import { waitFor } from "../helpers/services";

const FAKE = resolve(import.meta.dir, "../fixtures/fake-llama-server.ts");
const REAL_BIN = process.env.LLAMA_SERVER_BIN;
const REAL_MODEL = process.env.LLAMA_TEST_MODEL;
if (!REAL_BIN || !REAL_MODEL) console.log("SKIP security-children (real llama-server): set LLAMA_SERVER_BIN and LLAMA_TEST_MODEL; the fake server variant still runs");
const JSON_TYPE = { "content-type": "application/json" };

const variants = [
  { name: "fake llama-server", enabled: true, bin: FAKE, model: undefined as string | undefined },
  { name: "real llama-server", enabled: Boolean(REAL_BIN && REAL_MODEL), bin: REAL_BIN ?? "", model: REAL_MODEL },
];

for (const v of variants) {
  describe.skipIf(!v.enabled)(`finding 2: llama-server children are open (${v.name})`, () => {
    let dir: string;
    let srv: RunningServer;
    let childUrl: string;
    let childKey: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "lap-children-"));
      srv = await startServer({ port: 0, host: "127.0.0.1", dataDir: dir, configPath: join(dir, "config.json"), logLevel: "debug", environment: "test", quiet: true, databasePath: ":memory:" });
      // A configured non-loopback host must not expose the child either.
      srv.services.config.update({ ...srv.services.config.get(), serverPath: v.bin, host: "0.0.0.0", port: 23000 + Math.floor(Math.random() * 9000), ctx_size: 512, batch_size: 128, threads: 2, gpu_layers: 0, stopTimeoutSeconds: 5, metricsIntervalSeconds: 1 });
      let path = v.model;
      if (!path) {
        path = join(dir, "tiny.gguf");
        writeFileSync(path, "GGUF fake weights");
      }
      srv.services.registry.insert([{ id: "tiny", name: "tiny", path, size: 17, family: "llama", format: "gguf", settings: {} }]);
      const started = await fetch(`${srv.url}/api/models/tiny/start`, { method: "POST", headers: JSON_TYPE });
      expect(started.status).toBe(200);
      const model = (await (await fetch(`${srv.url}/api/models/tiny`)).json()).data;
      expect(model.port).toBeGreaterThan(0);
      childUrl = `http://127.0.0.1:${model.port}`;
      const pid = srv.services.supervisor.runtimeOf("tiny")!.pid!;
      // The key is in the child's environment (readable by its owner only), not in argv.
      const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      childKey = env.find((e) => e.startsWith("LLAMA_API_KEY="))?.slice("LLAMA_API_KEY=".length) ?? "";
    }, 120_000);

    afterAll(async () => {
      await srv?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    test("a direct request to the child's port without the key is refused (401); /health stays public", async () => {
      const direct = [
        ["POST", "/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 1 })],
        ["POST", "/completion", JSON.stringify({ prompt: "hi", n_predict: 1 })],
        ["GET", "/props", undefined],
        ["GET", "/slots", undefined],
        ["GET", "/metrics", undefined],
        ["GET", "/v1/models", undefined],
      ] as const;
      for (const [method, path, body] of direct) {
        const res = await fetch(`${childUrl}${path}`, { method, headers: { ...JSON_TYPE, origin: "http://evil.example" }, body });
        expect(`${path} ${res.status}`).toBe(`${path} 401`);
        await res.body?.cancel();
        const wrong = await fetch(`${childUrl}${path}`, { method, headers: { ...JSON_TYPE, authorization: "Bearer not-the-key" }, body });
        expect(wrong.status).toBe(401);
        await wrong.body?.cancel();
      }
      expect((await fetch(`${childUrl}/health`)).status).toBe(200);
      // With the key it answers: the 401 above is the key check, not a broken server.
      expect((await fetch(`${childUrl}/props`, { headers: { authorization: `Bearer ${childKey}` } })).status).toBe(200);
    });

    test("each child has its own random key, in its environment, not in argv (ps)", async () => {
      expect(childKey.length).toBeGreaterThanOrEqual(32);
      const pid = srv.services.supervisor.runtimeOf("tiny")!.pid!;
      expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain(childKey);
    });

    test("the child listens on loopback only, even with host 0.0.0.0 in the config", async () => {
      const pid = srv.services.supervisor.runtimeOf("tiny")!.pid!;
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      expect(argv[argv.indexOf("--host") + 1]).toBe("127.0.0.1");
    });

    test("the proxy, /upstream and the metrics collector add the key", async () => {
      const chat = await fetch(`${srv.url}/v1/chat/completions`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }) });
      const text = await chat.text();
      // With the body when it is not a 200: a loaded CI run once got a 500 here, and the status
      // alone did not say whether llama-server or the proxy answered it.
      expect({ status: chat.status, body: chat.status === 200 ? "" : text }).toEqual({ status: 200, body: "" });
      expect(JSON.parse(text).object).toBe("chat.completion");
      const props = await fetch(`${srv.url}/upstream/tiny/props`);
      expect(props.status).toBe(200);
      const slots = await fetch(`${srv.url}/upstream/tiny/slots`);
      expect(slots.status).toBe(200);
      await slots.body?.cancel();
      // The collector reads each child's /metrics: a sample lists the model (it would be left out on 401).
      await srv.services.collector.sampleNow();
      const sample = await waitFor(async () => {
        const m = (await (await fetch(`${srv.url}/api/monitoring`)).json()).data;
        return m?.llamaServers?.some((x: { modelId: string }) => x.modelId === "tiny") ? m : null;
      }, "a metrics sample with the child's /metrics", 15_000, 100);
      expect(sample.llamaServers.length).toBeGreaterThan(0);
    });

    test("the key is never in /api/models, the logs, the pidfile or a client response", async () => {
      const texts = [
        await (await fetch(`${srv.url}/api/models`)).text(),
        await (await fetch(`${srv.url}/api/models/tiny`)).text(),
        await (await fetch(`${srv.url}/api/status`)).text(),
        await (await fetch(`${srv.url}/api/logs?limit=1000`)).text(),
        JSON.stringify(srv.services.logs.query({})),
        existsSync(join(dir, "llama-servers.json")) ? readFileSync(join(dir, "llama-servers.json"), "utf8") : "",
      ];
      expect(childKey).not.toBe("");
      for (const t of texts) expect(t).not.toContain(childKey);
    });
  });
}
