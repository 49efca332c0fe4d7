// Small, pure formatting helpers shared by the views (unit-tested in tests/unit/console-data.test.ts).

export function formatGB(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes <= 0) return "–";
  // Tiny test models would all read "0.00 GB".
  if (bytes < 10_000_000) return formatBytes(bytes);
  const gb = bytes / 1e9;
  return gb >= 10 ? `${gb.toFixed(1)} GB` : `${gb.toFixed(2)} GB`;
}

export function formatMB(mb: number | undefined): string {
  if (mb === undefined || !Number.isFinite(mb)) return "–";
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${Math.round(mb)} MB`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes <= 0) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let n = bytes;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** 75 -> "1m 15s", 3 -> "3s", 7322 -> "2h 2m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function formatNumber(n: number | undefined, digits = 1): string {
  if (n === undefined || !Number.isFinite(n)) return "–";
  return Number.isInteger(n) ? String(n) : digits === 0 ? String(Math.round(n)) : n.toFixed(digits);
}

/** "12:03:04" in UTC, stable across test machines. */
export function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().slice(11, 19);
}

/** An SVG polyline path for a sparkline of `values` (0..max) in a w×h box; "" when < 2 points. */
export function sparklinePoints(values: number[], w: number, h: number, max?: number): string {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length < 2) return "";
  const top = max ?? Math.max(...v, 1);
  const step = w / (v.length - 1);
  return v
    .map((x, i) => `${(i * step).toFixed(1)},${(h - (Math.min(x, top) / top) * (h - 2) - 1).toFixed(1)}`)
    .join(" ");
}
