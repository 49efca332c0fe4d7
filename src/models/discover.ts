/**
 * Model discovery: walks folders, matches file names with Bun.Glob, reads GGUF headers (header
 * only), and turns files into model entries: split models (`x-00001-of-00003.gguf`) become one
 * model, multimodal projectors (`mmproj*`, architecture "clip") are attached to the models beside
 * them. Pure file-system work: it returns what it found and what it had to skip, and never
 * touches the registry (see catalog.ts for that).
 *
 * Robustness rules, each with a test in tests/unit/discover.test.ts:
 * - symlinked folders are followed once per real path, so a symlink loop cannot hang the walk;
 * - a folder or file we cannot read, a broken symlink, a FIFO or socket (opening a FIFO would
 *   block forever, so we never open anything that is not a regular file), an entry that vanishes
 *   between listing and stat, a non-GGUF file named .gguf: all end up in `skipped`, never thrown.
 */
import type { Dirent, Stats } from "node:fs";
import { readdir, realpath, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { GgufError, enoughForDiscovery, hasGgufMagic, readGgufHeader, summarizeGguf, type GgufSummary } from "./gguf";
import { familyFromName, isMmprojName, parseSplitName, quantizationFromName, shardFileName, stemOf } from "./names";

export interface FoundModel {
  name: string;
  description?: string;
  version?: string;
  path: string;
  /** Bytes; the sum of all shards for a split model. */
  size: number;
  format: "gguf" | "bin";
  family: string;
  quantization?: string;
  contextSize?: number;
  /** Projector in the same folder, passed to llama-server as --mmproj. */
  mmprojPath?: string;
  /** 1 unless split. */
  shards: number;
}

export interface SkippedEntry {
  path: string;
  reason: string;
}

export interface ScanOptions {
  /** Absolute folders to scan (the caller validated that they are folders). */
  roots: string[];
  recursive?: boolean;
  includePatterns?: string[];
  excludePatterns?: string[];
  /** Depth limit below each root (default 32), a guard against pathological trees. */
  maxDepth?: number;
  /** Header reads in flight at once (default 32). */
  concurrency?: number;
  signal?: AbortSignal;
}

export interface ScanResult {
  models: FoundModel[];
  skipped: SkippedEntry[];
  scannedPaths: string[];
  /** Files that matched the patterns (before grouping shards and projectors). */
  filesMatched: number;
  durationMs: number;
}

export const DEFAULT_INCLUDE = ["*.gguf"];

const PSEUDO_FS = ["/proc", "/sys", "/dev"];

/** One file that matched the patterns, with what its header says. */
interface Candidate {
  path: string;
  /** realpath, to recognise one file reached by two paths. */
  real: string;
  name: string;
  dir: string;
  size: number;
  format: "gguf" | "bin";
  header?: GgufSummary;
}

/** A short reason for a file-system error ("permission denied", "no such file"), never a stack. */
export function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "ENOENT":
      return "no such file or directory";
    case "ELOOP":
      return "too many levels of symbolic links";
    case "ENOTDIR":
      return "not a directory";
    case "EISDIR":
      return "is a directory";
    case "EIO":
      return "I/O error";
    default:
      return e?.message ?? String(err);
  }
}

function kindOf(st: Stats | Dirent): string {
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  return "not a regular file";
}

class PatternSet {
  private readonly globs: { glob: InstanceType<typeof Bun.Glob>; onPath: boolean }[];
  constructor(patterns: string[]) {
    // A pattern with a slash is matched against the path below the root, others against the name.
    this.globs = patterns.map((p) => ({ glob: new Bun.Glob(p), onPath: p.includes("/") }));
  }
  get empty() {
    return this.globs.length === 0;
  }
  matches(name: string, relPath: string): boolean {
    return this.globs.some(({ glob, onPath }) => {
      const s = onPath ? relPath : name;
      // File systems mix MODEL.GGUF and model.gguf; "*.gguf" means both.
      return glob.match(s) || glob.match(s.toLowerCase());
    });
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      signal?.throwIfAborted();
      await fn(items[next++]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function scanForModels(opts: ScanOptions): Promise<ScanResult> {
  const started = performance.now();
  const recursive = opts.recursive ?? true;
  const include = new PatternSet(opts.includePatterns?.length ? opts.includePatterns : DEFAULT_INCLUDE);
  const exclude = new PatternSet(opts.excludePatterns ?? []);
  const maxDepth = opts.maxDepth ?? 32;
  const signal = opts.signal;

  const skipped: SkippedEntry[] = [];
  const visitedDirs = new Set<string>();
  const matched: { path: string; name: string; dir: string }[] = [];

  // Symlinked folders are walked after the real tree, so a model is listed under its real folder
  // and a link (e.g. link-to-qwen -> qwen) is the one reported as the duplicate.
  const linkedDirs: { path: string; rel: string; depth: number }[] = [];

  const visitDir = async (dirPath: string, rel: string, depth: number): Promise<void> => {
    signal?.throwIfAborted();
    let real: string;
    try {
      real = await realpath(dirPath);
    } catch (err) {
      skipped.push({ path: dirPath, reason: describeFsError(err) });
      return;
    }
    // Following a symlink back up the tree (or to a folder already scanned) stops here.
    if (visitedDirs.has(real)) {
      if (depth > 0) skipped.push({ path: dirPath, reason: `already scanned as ${real} (symlink loop or duplicate)` });
      return;
    }
    visitedDirs.add(real);
    // Kernel pseudo filesystems hold no models, only links back into the real tree (e.g.
    // /proc/<pid>/cwd), which would list known models again under paths that die with a process.
    if (PSEUDO_FS.some((p) => real === p || real.startsWith(p + "/"))) {
      skipped.push({ path: dirPath, reason: "kernel pseudo filesystem, not scanned" });
      return;
    }
    let entries: Dirent[];
    try {
      entries = await readdir(dirPath, { withFileTypes: true });
    } catch (err) {
      skipped.push({ path: dirPath, reason: `cannot read folder: ${describeFsError(err)}` });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const ent of entries) {
      const full = join(dirPath, ent.name);
      const relPath = rel ? `${rel}/${ent.name}` : ent.name;
      let isDir = ent.isDirectory();
      let isFile = ent.isFile();
      let target: Stats | Dirent = ent;
      const isLink = ent.isSymbolicLink();
      // Some file systems (NFS, FUSE) report DT_UNKNOWN: every is*() is false until we stat.
      const unknownType = !isLink && !isDir && !isFile && !ent.isFIFO() && !ent.isSocket() && !ent.isCharacterDevice() && !ent.isBlockDevice();
      if (isLink || unknownType) {
        try {
          const st = await stat(full);
          isDir = st.isDirectory();
          isFile = st.isFile();
          target = st;
        } catch (err) {
          // Gone between readdir and stat, or a link to nowhere.
          skipped.push({ path: full, reason: isLink ? `broken symbolic link: ${describeFsError(err)}` : describeFsError(err) });
          continue;
        }
      }
      if (isDir) {
        // Hidden folders (.git, .cache, .Trash) are not where models live and can be huge.
        if (!recursive || ent.name.startsWith(".")) continue;
        if (!exclude.empty && (exclude.matches(ent.name, relPath) || exclude.matches(ent.name, `${relPath}/`))) continue;
        if (depth + 1 > maxDepth) {
          skipped.push({ path: full, reason: `deeper than ${maxDepth} levels` });
          continue;
        }
        if (isLink) linkedDirs.push({ path: full, rel: relPath, depth: depth + 1 });
        else await visitDir(full, relPath, depth + 1);
        continue;
      }
      if (!include.matches(ent.name, relPath) || exclude.matches(ent.name, relPath)) continue;
      if (!isFile) {
        skipped.push({ path: full, reason: `${kindOf(target)}, not a model file` });
        continue;
      }
      matched.push({ path: full, name: ent.name, dir: dirPath });
    }
  };

  for (const root of opts.roots) await visitDir(root, "", 0);
  // Visiting a linked folder can queue more links; realpath tracking ends any loop.
  for (let i = 0; i < linkedDirs.length; i++) await visitDir(linkedDirs[i]!.path, linkedDirs[i]!.rel, linkedDirs[i]!.depth);

  // Read headers concurrently: each read is a small positioned read, so the disk queue, not
  // the CPU, sets the pace; a bounded pool keeps file descriptors in check.
  const inspected: (Candidate | undefined)[] = new Array(matched.length);
  await pool(
    matched.map((m, i) => ({ ...m, i })),
    opts.concurrency ?? 32,
    async (m) => {
      inspected[m.i] = await inspectCandidate(m.path, m.name, m.dir).catch((err: unknown) => {
        skipped.push({ path: m.path, reason: err instanceof GgufError ? err.message : describeFsError(err) });
        return undefined;
      });
    },
    signal,
  );
  // Two paths to one file (links into a blob store) are one model: the first in walk order wins,
  // decided after the concurrent reads so the choice does not depend on which read finished first.
  const candidates: Candidate[] = [];
  const seenFiles = new Set<string>();
  for (const c of inspected) {
    if (!c || seenFiles.has(c.real)) continue;
    seenFiles.add(c.real);
    candidates.push(c);
  }

  const { models, skipped: groupSkipped } = groupCandidates(candidates);
  skipped.push(...groupSkipped);
  skipped.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    models,
    skipped,
    scannedPaths: opts.roots,
    filesMatched: matched.length,
    durationMs: Math.round((performance.now() - started) * 10) / 10,
  };
}

/**
 * Stats and (for GGUF) reads the header of one file. Returns undefined for a second path to a
 * file already seen (two symlinks to one blob are one model). Throws on unreadable or bad files.
 */
async function inspectCandidate(path: string, name: string, dir: string): Promise<Candidate> {
  const st = await stat(path);
  // Checked before any open: opening a FIFO for reading blocks until a writer appears.
  if (!st.isFile()) throw new Error(`${kindOf(st)}, not a model file`);
  const real = await realpath(path);
  // Only files that start with the GGUF magic are models: llama-server loads nothing else, and
  // a "model" is a file whose path we hand to a program (a config file, /etc/passwd, a script
  // registered as a model was finding 4 of #11). Anything else throws and lands in `skipped`
  // (discovery) or a VALIDATION_ERROR (registration).
  const header = summarizeGguf(await readGgufHeader(path, { stopBeforeLargeArrays: enoughForDiscovery }));
  return { path, real, name, dir, size: st.size, format: "gguf", header };
}

const PROJECTOR_PREFERENCE = ["F16", "BF16", "F32", "Q8_0"];

function pickProjector(projectors: Candidate[]): Candidate | undefined {
  if (projectors.length <= 1) return projectors[0];
  const rank = (c: Candidate) => {
    const q = c.header?.quantization ?? quantizationFromName(c.name) ?? "";
    const i = PROJECTOR_PREFERENCE.indexOf(q);
    return i < 0 ? PROJECTOR_PREFERENCE.length : i;
  };
  return [...projectors].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name))[0];
}

function toModel(first: Candidate, size: number, shards: number): FoundModel {
  const h = first.header;
  const name = stemOf(first.name);
  const description = h?.description ?? (h?.name && h.name !== name ? h.name : undefined);
  const quantization = h?.quantization ?? quantizationFromName(first.name);
  return {
    name,
    ...(description ? { description } : {}),
    ...(h?.version ? { version: h.version } : {}),
    path: first.path,
    size,
    format: first.format,
    family: h?.architecture ?? familyFromName(first.name) ?? "unknown",
    ...(quantization ? { quantization } : {}),
    ...(h?.contextSize ? { contextSize: h.contextSize } : {}),
    shards,
  };
}

/** Shards into one model each, projectors onto the models of their folder. */
function groupCandidates(candidates: Candidate[]): { models: FoundModel[]; skipped: SkippedEntry[] } {
  const skipped: SkippedEntry[] = [];
  const projectorsByDir = new Map<string, Candidate[]>();
  const splits = new Map<string, { stem: string; count: number; dir: string; parts: Map<number, Candidate> }>();
  const models: FoundModel[] = [];

  for (const c of candidates) {
    if (isMmprojName(c.name) || c.header?.architecture === "clip") {
      const list = projectorsByDir.get(c.dir) ?? [];
      list.push(c);
      projectorsByDir.set(c.dir, list);
      continue;
    }
    const split = parseSplitName(c.name);
    if (split && split.count > 1) {
      const key = join(c.dir, `${split.stem}\0${split.count}`);
      let group = splits.get(key);
      if (!group) splits.set(key, (group = { stem: split.stem, count: split.count, dir: c.dir, parts: new Map() }));
      group.parts.set(split.part, c);
      continue;
    }
    models.push(toModel(c, c.size, 1));
  }

  for (const g of splits.values()) {
    const first = g.parts.get(1);
    const missing = Array.from({ length: g.count }, (_, i) => i + 1).filter((n) => !g.parts.has(n));
    if (!first || missing.length) {
      skipped.push({
        path: join(g.dir, shardFileName(g.stem, 1, g.count)),
        reason: `incomplete split model: missing part${missing.length > 1 ? "s" : ""} ${missing.join(", ")} of ${g.count}`,
      });
      continue;
    }
    let size = 0;
    for (const p of g.parts.values()) size += p.size;
    models.push(toModel(first, size, g.count));
  }

  for (const m of models) {
    const projector = pickProjector(projectorsByDir.get(dirname(m.path)) ?? []);
    if (projector) m.mmprojPath = projector.path;
  }
  for (const [dir, list] of projectorsByDir) {
    if (!models.some((m) => dirname(m.path) === dir)) {
      for (const p of list) skipped.push({ path: p.path, reason: "multimodal projector without a model in its folder" });
    }
  }
  models.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { models, skipped };
}

/**
 * What registering one file needs: its metadata, the total size when it is the first shard of a
 * split model (the other shards are looked up beside it), and a projector in its folder.
 * Throws an Error whose message says why the file cannot be a model.
 */
export async function inspectModelFile(path: string): Promise<FoundModel> {
  const name = basename(path);
  const dir = dirname(path);
  if (isMmprojName(name)) throw new Error("is a multimodal projector (mmproj), not a model");
  const c = await inspectCandidate(path, name, dir).catch((err: unknown) => {
    throw new Error(err instanceof GgufError ? err.message : describeFsError(err));
  });
  if (c.header?.architecture === "clip") throw new Error("is a multimodal projector (architecture clip), not a model");
  let size = c.size;
  let shards = 1;
  const split = parseSplitName(name);
  if (split && split.count > 1) {
    if (split.part !== 1) throw new Error(`is part ${split.part} of a split model; register ${shardFileName(split.stem, 1, split.count)}`);
    for (let part = 2; part <= split.count; part++) {
      const shard = join(dir, shardFileName(split.stem, part, split.count));
      const st = await stat(shard).catch(() => undefined);
      if (!st?.isFile()) throw new Error(`split model is incomplete: ${basename(shard)} not found`);
      if (!(await hasGgufMagic(shard))) throw new Error(`${basename(shard)} is not a GGUF file (bad magic)`);
      size += st.size;
    }
    shards = split.count;
  }
  const model = toModel(c, size, shards);
  // A projector beside it (cheap: one readdir, headers only of mmproj files).
  try {
    const projectors: Candidate[] = [];
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      if (ent.isFile() && /\.gguf$/i.test(ent.name) && isMmprojName(ent.name)) {
        projectors.push({ path: join(dir, ent.name), real: join(dir, ent.name), name: ent.name, dir, size: 0, format: "gguf" });
      }
    }
    const p = pickProjector(projectors);
    if (p && (await hasGgufMagic(p.path))) model.mmprojPath = p.path;
  } catch {
    // An unlistable folder only means no projector.
  }
  return model;
}
