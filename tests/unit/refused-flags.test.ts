import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { findRefusedFlag, REFUSED_FLAGS } from "../../src/supervisor/refused-flags";

const HELP = readFileSync(join(import.meta.dir, "../../../shared/fixtures/llama-server/llama-server-help.txt"), "utf8");

describe("finding 3: dangerous llama-server flags pass through extraArgs", () => {
  test.each([
    [["--tools", "exec_shell_command"], "--tools"],
    [["--tools=all"], "--tools"],
    [["--path", "/"], "--path"],
    [["--api-key", "x"], "--api-key"],
    [["--host", "0.0.0.0"], "--host"],
    [["--ssl-key-file", "/k"], "--ssl-key-file"],
    [["--log-file", "/home/u/.bashrc"], "--log-file"],
    [["--video-ffmpeg-dir", "/tmp/evil"], "--video-ffmpeg-dir"],
    [["-ag"], "-ag"],
    [["--webui-mcp-proxy"], "--webui-mcp-proxy"],
    [["-hf", "user/model"], "-hf"],
    [["--cors-origins", "*"], "--cors-origins"],
    [["--chat-template-file", "/etc/shadow"], "--chat-template-file"],
    [["--jinja", "-c", "4096", "--media-path", "/"], "--media-path"],
  ])("%p is refused (%p)", (args, flag) => {
    expect(findRefusedFlag(args)?.flag).toBe(flag);
  });

  test.each([[["--jinja"]], [["-fa", "on", "--temp", "0.2"]], [["--lora", "/m/a.gguf"]], [["--chat-template", "chatml"]], [["--no-webui"]], [["--props"]], [["-np", "2", "--cont-batching"]]])("%p passes", (args) => {
    expect(findRefusedFlag(args)).toBeNull();
  });

  test("a flag's value is not mistaken for a flag, and non-strings are skipped", () => {
    expect(findRefusedFlag(["--chat-template", "--path-like-name"])).toBeNull();
    expect(findRefusedFlag([42, null])).toBeNull();
  });

  test("every refused flag exists in llama-server --help, and the dangerous ones there are all refused", () => {
    const helpFlags = new Set(HELP.match(/(?<=^|[\s,])-{1,2}[a-z][\w.-]*/gm) ?? []);
    for (const row of REFUSED_FLAGS) {
      expect(row.reason.length).toBeGreaterThan(10);
      for (const f of row.flags) expect(`${f} in help: ${helpFlags.has(f)}`).toBe(`${f} in help: true`);
    }
    for (const f of ["--host", "--port", "--api-key", "--api-key-file", "--ssl-key-file", "--ssl-cert-file", "--path", "--tools", "--reuse-port", "--webui-mcp-proxy", "--mcp-servers-config", "--media-path", "--slot-save-path", "--log-file"]) {
      expect(findRefusedFlag([f])).not.toBeNull();
    }
  });
});
