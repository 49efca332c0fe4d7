// The console's static files. Imported `with { type: "file" }` so `bun build --compile` embeds
// them in the executable (the import is then a /$bunfs/ path); in `bun src/main.ts` they are the
// files on disk. No CDN: the console must work on a machine with no internet.
import htmxJs from "../../node_modules/htmx.org/dist/htmx.min.js" with { type: "file" };
import uplotJs from "../../node_modules/uplot/dist/uPlot.iife.min.js" with { type: "file" };
import uplotCss from "../../node_modules/uplot/dist/uPlot.min.css" with { type: "file" };
import appCss from "../../static/app.css" with { type: "file" };
import consoleJs from "../../static/console.js" with { type: "file" };
import activityJs from "../../static/activity.js" with { type: "file" };
import { readFileSync } from "node:fs";

const FILES: Record<string, { path: string; type: string }> = {
  "htmx.min.js": { path: htmxJs, type: "text/javascript; charset=utf-8" },
  "uPlot.iife.min.js": { path: uplotJs, type: "text/javascript; charset=utf-8" },
  "uPlot.min.css": { path: uplotCss, type: "text/css; charset=utf-8" },
  "app.css": { path: appCss, type: "text/css; charset=utf-8" },
  "console.js": { path: consoleJs, type: "text/javascript; charset=utf-8" },
  "activity.js": { path: activityJs, type: "text/javascript; charset=utf-8" },
};

export type AssetName = keyof typeof FILES;

export interface Asset {
  name: string;
  type: string;
  body: Uint8Array<ArrayBuffer>;
  /** Content hash: the ETag, and the `?v=` of versioned URLs. */
  hash: string;
}

// Read once, on first use (createApp does no I/O). The files are small (about 120 kB in all)
// and never change while the process runs, so holding them in memory is cheaper than a read per
// request and lets the ETag be computed once.
let loaded: Map<string, Asset> | null = null;

function load(): Map<string, Asset> {
  if (loaded) return loaded;
  const map = new Map<string, Asset>();
  for (const [name, f] of Object.entries(FILES)) {
    const body = new Uint8Array(readFileSync(f.path)) as Uint8Array<ArrayBuffer>;
    map.set(name, { name, type: f.type, body, hash: Bun.hash(body).toString(36) });
  }
  return (loaded = map);
}

export function getAsset(name: string): Asset | undefined {
  return load().get(name);
}

/** The versioned URL of an asset: served `immutable`, so a new build busts the cache by itself. */
export function assetUrl(name: AssetName): string {
  const a = getAsset(name);
  return `/static/${name}${a ? `?v=${a.hash}` : ""}`;
}
