/** @jsxImportSource hono/jsx */
import { Layout } from "../layout";
import { Charts, type History, type RangeKey } from "../partials/charts";

export function MonitoringPage(props: { range: RangeKey; history?: History; error?: string }) {
  return (
    <Layout title="Monitoring" active="monitoring" topics={["metrics"]} charts>
      <h1>Monitoring</h1>
      <Charts range={props.range} history={props.history} error={props.error} />
    </Layout>
  );
}
