/** @jsxImportSource hono/jsx */
import type { LogFilter } from "../data";
import type { LogEntry } from "../../logs/types";
import { Layout } from "../layout";
import { LogFilters, LogView } from "../partials/logs";

export function LogsPage(props: { entries: LogEntry[]; filter: LogFilter; sources: string[]; lastId: number }) {
  return (
    <Layout title="Logs" active="logs" topics={["logs"]}>
      <h1>Logs</h1>
      <section class="card logs" aria-label="Log tail">
        <LogFilters filter={props.filter} sources={props.sources} />
        <LogView entries={props.entries} filter={props.filter} lastId={props.lastId} />
      </section>
    </Layout>
  );
}
