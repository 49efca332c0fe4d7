import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "../fixtures/supervisor-harness";
import { GpuProcessMemory, parseComputeApps, parseVmRssMb, readRssMb } from "../../src/supervisor/memory";
import { cmdlineMatches, readCmdline, readStartTime } from "../../src/supervisor/pidfile";
import { isPortFree, PortAllocator } from "../../src/supervisor/ports";
import { levelOfLine } from "../../src/supervisor/process";

describe("log levels of llama-server lines", () => {
  test("level markers after a timestamp prefix", () => {
    expect(levelOfLine("0.00.035.060 I main: loading model")).toBe("info");
    expect(levelOfLine("0.01.120.000 W load: special_eos_id is not in special_eog_ids")).toBe("warn");
    expect(levelOfLine("0.01.120.000 E llama_model_load: error loading model")).toBe("error");
    expect(levelOfLine("0.01.120.000 D some debug")).toBe("debug");
  });
  test("lines without markers: errors recognised, the rest is info", () => {
    expect(levelOfLine("llama_model_load: error loading model: tensor missing")).toBe("error");
    expect(levelOfLine("main: exiting due to model loading error")).toBe("error");
    expect(levelOfLine("srv  log_server_r: request: GET /health 127.0.0.1 200")).toBe("info");
    expect(levelOfLine("main: server is listening on http://127.0.0.1:8080 - starting the main loop")).toBe("info");
  });
});

describe("memory", () => {
  test("VmRSS in MB from /proc/<pid>/status", () => {
    expect(parseVmRssMb("Name:\tllama-server\nVmRSS:\t  204800 kB\nVmSwap: 0 kB\n")).toBe(200);
    expect(parseVmRssMb("Name: x\n")).toBeUndefined();
    const own = readRssMb(process.pid);
    expect(own).toBeGreaterThan(1);
    expect(readRssMb(2 ** 22 + 12345)).toBeUndefined();
  });
  test("GPU memory per pid from nvidia-smi --query-compute-apps (real H200 output)", () => {
    const csv = readFileSync(join(import.meta.dir, "../fixtures/nvidia-smi/smi-apps-load.csv"), "utf8");
    expect(parseComputeApps(csv).get(422)).toBe(21482);
    const withHeader = "pid, process_name, used_gpu_memory [MiB]\n422, python3, 21482 MiB\n7, llama-server, 100 MiB\n";
    expect([...parseComputeApps(withHeader)]).toEqual([[422, 21482], [7, 100]]);
  });
});

describe("GPU memory per process", () => {
  test("sampled in the background from nvidia-smi, read without waiting", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lap-smi-"));
    try {
      const smi = join(dir, "nvidia-smi");
      // Answers like the real one (tests/fixtures/nvidia-smi/smi-apps-load.csv, noheader,nounits).
      writeFileSync(smi, "#!/bin/sh\necho '422, 21482'\necho '77, 1024'\n");
      chmodSync(smi, 0o755);
      const gpu = new GpuProcessMemory(60_000, smi);
      expect(gpu.of(422)).toBeUndefined(); // first call starts the sample, does not block on it
      expect(await waitFor(() => gpu.of(422), "the nvidia-smi sample")).toBe(21482);
      expect(gpu.of(77)).toBe(1024);
      expect(gpu.of(5)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("without nvidia-smi nothing is reported", () => {
    expect(new GpuProcessMemory(0, null).of(process.pid)).toBeUndefined();
  });
});

describe("pidfile identity", () => {
  test("start time and command line of a live process", () => {
    expect(readStartTime(process.pid)).toBeGreaterThan(0);
    expect(readStartTime(2 ** 22 + 12345)).toBeNull();
    expect(readCmdline(process.pid)?.length).toBeGreaterThan(0);
  });
  test("command lines match exactly, or through a shebang interpreter, and nothing else", () => {
    const cmd = ["/x/fake-llama-server.ts", "-m", "/m.gguf", "--port", "9000"];
    expect(cmdlineMatches(cmd, cmd)).toBe(true);
    expect(cmdlineMatches(["bun", "/x/fake-llama-server.ts", "-m", "/m.gguf", "--port", "9000"], cmd)).toBe(true);
    expect(cmdlineMatches(["bun", "/x/fake-llama-server.ts", "-m", "/m.gguf", "--port", "9001"], cmd)).toBe(false);
    expect(cmdlineMatches(["bash", "-c", "-m /m.gguf --port 9000"], cmd)).toBe(false);
    expect(cmdlineMatches(null, cmd)).toBe(false);
  });
});

describe("ports", () => {
  test("allocation starts at the base port, skips ports in use and ports already handed out", () => {
    const busy = new Set([9001]);
    const alloc = new PortAllocator((_h, p) => !busy.has(p));
    expect(alloc.allocate("127.0.0.1", 9000)).toBe(9000);
    expect(alloc.allocate("127.0.0.1", 9000)).toBe(9002);
    alloc.release(9000);
    expect(alloc.allocate("127.0.0.1", 9000)).toBe(9000);
    expect(alloc.inUse).toEqual([9000, 9002]);
    expect(alloc.allocate("127.0.0.1", 9000, new Set([9003]))).toBe(9004);
  });
  test("a real listener makes its port busy", () => {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("x") });
    try {
      expect(isPortFree("127.0.0.1", server.port!)).toBe(false);
      const alloc = new PortAllocator();
      expect(alloc.allocate("127.0.0.1", server.port!)).not.toBe(server.port);
    } finally {
      server.stop(true);
    }
  });
  test("no free port gives a clear error", () => {
    const alloc = new PortAllocator(() => false);
    expect(() => alloc.allocate("127.0.0.1", 9000, undefined, 5)).toThrow("No free port");
  });
});
