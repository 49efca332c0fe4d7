/** @jsxImportSource hono/jsx */
import type { DashboardData } from "../data";
import type { Child } from "hono/jsx";
import { Layout } from "../layout";
import { DashboardLive } from "../partials/dashboard";

export function DashboardPage(props: { d: DashboardData; queue?: Child }) {
  return (
    <Layout title="Dashboard" active="dashboard" topics={["metrics", "models", "requests"]}>
      <h1>Dashboard</h1>
      <DashboardLive d={props.d} />
      {props.queue}
    </Layout>
  );
}
