/** @jsxImportSource hono/jsx */
import { clock } from "../format";
import type { LogFilter } from "../data";
import type { LogEntry } from "../../logs/types";
import { LOG_LEVELS } from "../../logs/types";

/** Log lines as list items; the page renders them and /ui/logs/lines appends new ones. */
export function LogLines(props: { entries: LogEntry[] }) {
  return (
    <>
      {props.entries.map((e) => (
        <li data-id={e.id} data-level={e.level}>
          <time datetime={e.timestamp}>{clock(e.timestamp)}</time>
          <span class="lvl">{e.level}</span>
          <span class="src">{e.source}</span>
          <span class="msg">{e.message}</span>
        </li>
      ))}
    </>
  );
}

export function filterQuery(f: LogFilter): string {
  const p = new URLSearchParams();
  if (f.level) p.set("level", f.level);
  if (f.source) p.set("source", f.source);
  if (f.q) p.set("q", f.q);
  const s = p.toString();
  return s ? `?${s}` : "";
}

/** The tail: filtered lines, oldest first, with the newest id for incremental appends. */
export function LogView(props: { entries: LogEntry[]; filter: LogFilter; lastId: number }) {
  return (
    <div id="log-view" data-last-id={String(props.lastId)} data-query={filterQuery(props.filter)}>
      {props.entries.length === 0 ? <p class="empty" id="log-empty">No log lines match.</p> : null}
      <ol id="log-lines" class="log-lines" aria-live="off">
        <LogLines entries={props.entries} />
      </ol>
    </div>
  );
}

export function LogFilters(props: { filter: LogFilter; sources: string[] }) {
  const f = props.filter;
  const sources = [...new Set([...props.sources, ...(f.source ? [f.source] : [])])];
  const hasModels = sources.some((s) => s.startsWith("llama-server:"));
  return (
    <form
      id="log-filters"
      class="toolbar"
      method="get"
      action="/logs"
      hx-get="/ui/logs"
      hx-target="#log-view"
      hx-swap="outerHTML"
      hx-trigger="change, input delay:300ms from:#log-q, submit"
      role="search"
    >
      <label for="log-level">Level</label>
      <select id="log-level" name="level">
        <option value="" selected={!f.level}>all</option>
        {LOG_LEVELS.map((l) => (
          <option value={l} selected={f.level === l}>{l === "debug" ? "debug (all)" : `${l} and above`}</option>
        ))}
      </select>
      <label for="log-source">Source</label>
      <select id="log-source" name="source">
        <option value="" selected={!f.source}>all</option>
        {hasModels ? <option value="llama-server:*" selected={f.source === "llama-server:*"}>every model</option> : null}
        {sources.map((s) => (
          <option value={s} selected={f.source === s}>{s}</option>
        ))}
      </select>
      <label for="log-q">Search</label>
      <input id="log-q" name="q" type="search" value={f.q ?? ""} placeholder="text in message" />
      <noscript><button type="submit" class="btn">Filter</button></noscript>
      <span class="spacer"></span>
      <button type="button" id="log-pause" class="btn" aria-pressed="false" hidden>Pause</button>
      <a id="log-download" class="btn" href={`/ui/logs/download${filterQuery(f)}`} download="llama-async-proxy.log">Download</a>
    </form>
  );
}
