import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { writeFileAtomic } from "../config/store";

/** A process identity that survives pid reuse: the pid plus its kernel start time. */
export interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot); null off Linux. */
  startTime: number | null;
}

export interface ChildRecord extends ProcessIdentity {
  modelId: string;
  port: number;
  /** The argv we spawned, compared with /proc/<pid>/cmdline before anything is killed. */
  command: string[];
  startedAt: string;
}

interface PidFileContent {
  owner: ProcessIdentity;
  children: ChildRecord[];
}

/** Start time of a process, or null when it does not exist (or /proc is unavailable). */
export function readStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) may contain spaces and parentheses; fields after the last ")" are fixed.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(rest[19]); // field 22 overall = index 19 after pid, comm
  } catch {
    return null;
  }
}

export function readCmdline(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return raw.split("\0").filter((a, i, all) => a !== "" || i < all.length - 1);
  } catch {
    return null;
  }
}

/** Field 3 of /proc/<pid>/stat: R, S, D, T, Z (zombie), X (dead)...; null when there is none. */
export function readProcState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? null;
  } catch {
    return null;
  }
}

/**
 * True when `id` still names the same live process (not a new one that reused the pid). A zombie
 * is dead: a proxy killed with -9 stays one until its parent reaps it (a shell, a test runner, a
 * service manager may take a while), and a restart within that window used to take it for a
 * live owner and leave its llama-servers running for good (finding 7 of #11).
 */
export function isSameProcessAlive(id: ProcessIdentity): boolean {
  const now = readStartTime(id.pid);
  if (now === null) return false;
  const state = readProcState(id.pid);
  if (state === "Z" || state === "X" || state === "x") return false;
  return id.startTime === null || now === id.startTime;
}

/**
 * True when the running process `pid` was started with `command`. A shebang script (our fake
 * llama-server) runs as `bun /path/script ...`, so argv[0] may have become the interpreter; we
 * then require the rest of our argv as a suffix.
 */
export function cmdlineMatches(actual: string[] | null, expected: string[]): boolean {
  if (!actual || actual.length === 0 || expected.length === 0) return false;
  if (actual.length === expected.length && actual.every((a, i) => a === expected[i])) return true;
  const tail = expected.slice(1);
  if (actual.length < tail.length + 1) return false;
  const offset = actual.length - tail.length;
  return tail.every((a, i) => actual[offset + i] === a) && actual.slice(0, offset).some((a) => a === expected[0]);
}

export const selfIdentity = (): ProcessIdentity => ({ pid: process.pid, startTime: readStartTime(process.pid) });

/**
 * <dataDir>/llama-servers.json: which llama-server children this proxy has running. Rewritten
 * atomically on every spawn and exit, so after a kill -9 of the proxy the next start knows
 * exactly which orphans to stop (and, thanks to start times, never kills a stranger that
 * happens to have reused a pid).
 */
export class PidFile {
  private children = new Map<number, ChildRecord>();
  private readonly owner = selfIdentity();
  /** Where we write: the main file, or our own `llama-servers.<pid>.json` while another live proxy holds the main one. */
  path: string;

  constructor(readonly mainPath: string) {
    this.path = mainPath;
  }

  /** What a previous proxy left behind; null when there is no file or it is unreadable. */
  readPrevious(path = this.path): PidFileContent | null {
    if (!existsSync(path)) return null;
    try {
      const parsed = JSON.parse(readFileSync(path, "utf8")) as PidFileContent;
      if (!parsed || !Array.isArray(parsed.children) || !parsed.owner) return null;
      return parsed;
    } catch {
      return null;
    }
  }

  /**
   * Every pidfile in the folder: the main one and the per-pid ones of proxies that found the
   * main file held by a live proxy. A pidfile is never overwritten while the entries it holds
   * are not cleaned: each proxy writes only the file it owns.
   */
  allFiles(): string[] {
    const dir = dirname(this.mainPath);
    const stem = basename(this.mainPath).replace(/\.json$/, "");
    let names: string[] = [];
    try {
      names = readdirSync(dir).filter((n) => n.startsWith(`${stem}.`) && /^\d+\.json$/.test(n.slice(stem.length + 1)));
    } catch {
      // no folder yet
    }
    return [this.mainPath, ...names.map((n) => join(dir, n))];
  }

  /** Another live proxy holds the main file: keep ours apart instead of overwriting its list. */
  useOwnFile(): void {
    this.path = this.mainPath.replace(/\.json$/, `.${process.pid}.json`);
  }

  add(record: ChildRecord): void {
    this.children.set(record.pid, record);
    this.flush();
  }

  remove(pid: number): void {
    if (this.children.delete(pid)) this.flush();
  }

  get records(): ChildRecord[] {
    return [...this.children.values()];
  }

  /** Writes our current list (deletes the file when it is empty). */
  flush(): void {
    try {
      if (this.children.size === 0) rmSync(this.path, { force: true });
      else writeFileAtomic(this.path, JSON.stringify({ owner: this.owner, children: this.records } satisfies PidFileContent, null, 2));
    } catch {
      // A read-only data dir must not stop models from running; orphan cleanup is best effort.
    }
  }
}
