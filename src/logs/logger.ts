import type { LogBuffer } from "./buffer";
import { LEVEL_RANK, type LogLevel } from "./types";

/**
 * Our own logger: every line goes to the ring buffer (source "proxy" unless told otherwise) and,
 * at or above the console threshold, to stderr.
 */
export class Logger {
  constructor(
    private readonly buffer: LogBuffer,
    public consoleLevel: LogLevel = "info",
    private readonly source = "proxy",
    private readonly quiet = false,
  ) {}

  child(source: string): Logger {
    return new Logger(this.buffer, this.consoleLevel, source, this.quiet);
  }

  log(level: LogLevel, message: string, metadata?: Record<string, unknown>): void {
    this.buffer.append(level, this.source, message, metadata);
    if (!this.quiet && LEVEL_RANK[level] <= LEVEL_RANK[this.consoleLevel]) {
      const meta = metadata ? " " + JSON.stringify(metadata) : "";
      // Bun's console.error, not process.stderr: the first process.stderr.write builds Node's
      // stream machinery, ~3 ms of CPU and ~3 MB in a compiled probe, paid at start-up by the
      // first warning (no nvidia-smi, no model folder). One string argument is written as it is
      // (no format specifiers) and flushed at once, before an exit too.
      console.error(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${this.source}] ${message}${meta}`);
    }
  }

  error(message: string, metadata?: Record<string, unknown>) { this.log("error", message, metadata); }
  warn(message: string, metadata?: Record<string, unknown>) { this.log("warn", message, metadata); }
  info(message: string, metadata?: Record<string, unknown>) { this.log("info", message, metadata); }
  debug(message: string, metadata?: Record<string, unknown>) { this.log("debug", message, metadata); }
}
