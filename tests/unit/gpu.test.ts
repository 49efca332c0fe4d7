import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseString } from "xml2js";
import { LogBuffer } from "../../src/logs/buffer";
import { Logger } from "../../src/logs/logger";
import { GpuReader, parseNvidiaSmi, smiNumber } from "../../src/metrics/gpu";

const FIX = join(import.meta.dir, "../fixtures/nvidia-smi");
const fixture = (name: string) => join(FIX, name);

/** xml2js with node-nvidia-smi's own options, so the parse test sees what the library hands us. */
function xmlToObject(xml: string): Promise<unknown> {
  return new Promise((resolve, reject) =>
    parseString(xml, { explicitArray: false, trim: true }, (err: unknown, data: unknown) => (err ? reject(err) : resolve(data))),
  );
}

/** Expected numbers from the CSV fixture (`--query-gpu=... --format=csv,noheader,nounits`). */
function csvRow(name: string) {
  const [index, , gpuName, , used, total, free, util, , temp] = readFileSync(fixture(name), "utf8").trim().split("\n").at(-1)!.split(",").map((s) => s.trim());
  return { id: Number(index), name: gpuName, used: Number(used), total: Number(total), free: Number(free), util: Number(util), temp: Number(temp) };
}

describe("parseNvidiaSmi on real H200 output", () => {
  test("idle: numbers match the CSV query output", async () => {
    const reading = parseNvidiaSmi(await xmlToObject(readFileSync(fixture("smi-q-x-idle.xml"), "utf8")));
    // The idle CSV has a units header and a units row; its last row is the no-units one.
    const want = csvRow("smi-query-idle.csv");
    expect(reading.gpus).toHaveLength(1);
    const g = reading.gpus[0]!;
    expect(g).toEqual({
      id: want.id,
      name: want.name,
      memory: { used: want.used, total: want.total, free: want.free, usagePercent: 0 },
      utilization: want.util,
      temperature: want.temp,
    });
    expect(reading.processes).toEqual([]);
  });

  test("under load: 100 % utilization, ~21 GB used, the python3 process listed", async () => {
    const reading = parseNvidiaSmi(await xmlToObject(readFileSync(fixture("smi-q-x-load.xml"), "utf8")));
    const want = csvRow("smi-query-load.csv");
    const g = reading.gpus[0]!;
    expect(g.name).toBe("NVIDIA H200");
    expect(g.utilization).toBe(want.util);
    expect(g.utilization).toBe(100);
    expect(g.memory.used).toBe(want.used);
    expect(g.memory.total).toBe(want.total);
    expect(g.memory.free).toBe(want.free);
    expect(g.memory.usagePercent).toBeCloseTo((21491 / 143771) * 100, 1);
    expect(g.temperature).toBe(want.temp);
    const [pid, pname, pmem] = readFileSync(fixture("smi-apps-load.csv"), "utf8").trim().split(",").map((s) => s.trim());
    expect(reading.processes).toEqual([{ gpuId: 0, pid: Number(pid), name: pname!, usedMemory: Number(pmem) }]);
  });

  test("two GPUs come back as two entries with their own ids", async () => {
    const one = readFileSync(fixture("smi-q-x-load.xml"), "utf8");
    const gpuBlock = one.slice(one.indexOf("<gpu id="), one.indexOf("</gpu>") + "</gpu>".length);
    const second = gpuBlock.replace("<minor_number>0</minor_number>", "<minor_number>1</minor_number>").replace("<gpu_util>100 %</gpu_util>", "<gpu_util>37 %</gpu_util>");
    const two = one.replace(gpuBlock, gpuBlock + "\n" + second);
    const reading = parseNvidiaSmi(await xmlToObject(two));
    expect(reading.gpus.map((g) => [g.id, g.utilization])).toEqual([[0, 100], [1, 37]]);
  });

  test("unit strings and N/A", () => {
    expect(smiNumber("21491 MiB")).toBe(21491);
    expect(smiNumber("62 C")).toBe(62);
    expect(smiNumber("130.74 W")).toBe(130.74);
    expect(smiNumber("N/A")).toBeUndefined();
    expect(smiNumber("[N/A]")).toBeUndefined();
    expect(smiNumber(undefined)).toBeUndefined();
  });

  test("output without <nvidia_smi_log> is an error, not an empty GPU list", () => {
    expect(() => parseNvidiaSmi({ something: 1 })).toThrow(/nvidia_smi_log/);
  });
});

describe("GpuReader through node-nvidia-smi and a stand-in nvidia-smi on PATH", () => {
  let dir: string;
  const savedPath = process.env.PATH;
  const gate = () => join(dir, "gate");

  /** Installs a fake `nvidia-smi` printing a real captured output (or failing). */
  function fakeSmi(script: string) {
    const p = join(dir, "bin", "nvidia-smi");
    writeFileSync(p, `#!/bin/sh\n${script}\n`);
    chmodSync(p, 0o755);
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "lap-gpu-"));
    mkdirSync(join(dir, "bin"));
    process.env.PATH = `${join(dir, "bin")}:${savedPath}`;
  });
  afterAll(() => {
    writeFileSync(gate(), ""); // release any fake still waiting
    process.env.PATH = savedPath;
    rmSync(dir, { recursive: true, force: true });
  });

  const logger = () => {
    const buffer = new LogBuffer(100);
    return { buffer, log: new Logger(buffer, "error", "metrics", true) };
  };

  test("reads the fixture via the real library path", async () => {
    fakeSmi(`cat ${fixture("smi-q-x-load.xml")}`);
    const reader = new GpuReader();
    const r = await reader.refresh(5000);
    expect(r?.gpus[0]?.utilization).toBe(100);
    expect(r?.gpus[0]?.memory.used).toBe(21491);
    expect(reader.unavailable).toBe(false);
  });

  test("missing nvidia-smi: no reading, exactly one warning over many samples", async () => {
    const { buffer, log } = logger();
    // An empty PATH entry list that cannot contain nvidia-smi.
    process.env.PATH = "/nonexistent-lap-bin:/usr/bin:/bin";
    try {
      const reader = new GpuReader({ log, missingRetryMs: 0 });
      for (let i = 0; i < 4; i++) expect(await reader.refresh(5000)).toBeNull();
      expect(reader.unavailable).toBe(true);
      const warnings = buffer.query({ level: "warn" });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.message).toContain("nvidia-smi not found");
    } finally {
      process.env.PATH = `${join(dir, "bin")}:${savedPath}`;
    }
  });

  test("failing nvidia-smi drops the reading (gpu omitted) and warns once", async () => {
    const { buffer, log } = logger();
    fakeSmi(`cat ${fixture("smi-q-x-idle.xml")}`);
    const reader = new GpuReader({ log });
    expect((await reader.refresh(5000))?.gpus).toHaveLength(1);
    fakeSmi(`echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2; exit 9`);
    expect(await reader.refresh(5000)).toBeNull();
    expect(await reader.refresh(5000)).toBeNull();
    expect(buffer.query({ level: "warn" })).toHaveLength(1);
    // Recovery is noticed and logged once.
    fakeSmi(`cat ${fixture("smi-q-x-idle.xml")}`);
    expect((await reader.refresh(5000))?.gpus).toHaveLength(1);
    expect(buffer.query({ q: "resumed" })).toHaveLength(1);
  });

  test("slow nvidia-smi: the caller stops waiting, keeps the last good reading, no second run starts", async () => {
    const { buffer, log } = logger();
    fakeSmi(`cat ${fixture("smi-q-x-idle.xml")}`);
    const reader = new GpuReader({ log, timeoutMs: 300 });
    expect((await reader.refresh(5000))?.gpus[0]?.utilization).toBe(0);

    // Next run blocks until the test opens the gate, then prints the load output.
    const calls = join(dir, "calls");
    fakeSmi(`echo x >> ${calls}; while [ ! -f ${gate()} ]; do sleep 0.05; done; cat ${fixture("smi-q-x-load.xml")}`);
    const t0 = performance.now();
    const r = await reader.refresh(150);
    const waited = performance.now() - t0;
    expect(r?.gpus[0]?.utilization).toBe(0); // the last good (idle) reading
    expect(waited).toBeLessThan(1000);
    // Still outstanding: further refreshes do not start another nvidia-smi.
    await reader.refresh(50);
    await reader.refresh(50);
    // Past timeoutMs the outage is reported once.
    const deadline = Date.now() + 5000;
    while (!reader.unavailable && Date.now() < deadline) await Bun.sleep(20);
    expect(reader.unavailable).toBe(true);
    expect(buffer.query({ level: "warn" })).toHaveLength(1);
    expect(readFileSync(calls, "utf8").trim().split("\n")).toHaveLength(1);

    // Its late answer is still taken.
    writeFileSync(gate(), "");
    while (reader.busy && Date.now() < deadline) await Bun.sleep(20);
    expect(reader.busy).toBe(false);
    expect(reader.latest()?.gpus[0]?.utilization).toBe(100);
    expect(reader.unavailable).toBe(false);
    expect(existsSync(calls)).toBe(true);
  });
});

test("node-nvidia-smi resolves an xml2js without the prototype-pollution bug (>= 0.5, pinned 0.6.x)", () => {
  // CVE-2023-0842 affects xml2js < 0.5.0; package.json "overrides" pins what node-nvidia-smi gets.
  const fromSmi = Bun.resolveSync("xml2js/package.json", join(import.meta.dir, "../../node_modules/node-nvidia-smi"));
  const { version } = JSON.parse(readFileSync(fromSmi, "utf8")) as { version: string };
  expect(version).toMatch(/^0\.6\./);
  const pkg = JSON.parse(readFileSync(join(import.meta.dir, "../../package.json"), "utf8"));
  expect(pkg.overrides.xml2js).toMatch(/0\.6/);
});
