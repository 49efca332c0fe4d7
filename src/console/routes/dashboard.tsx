/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import type { Services } from "../../services";
import { LiveQueue } from "../activity";
import { DashboardPage } from "../pages/dashboard";
import { DashboardLive } from "../partials/dashboard";
import { dashboardData } from "../data";
import type { RecentMetrics } from "../recent";

/** The dashboard page and its live fragment. */
export function dashboardRoutes(s: Services, recent: RecentMetrics) {
  const app = new Hono();
  app.get("/", (c) => c.html(<DashboardPage d={dashboardData(s, recent)} queue={<LiveQueue requests={s.tracker.list()} />} />));
  app.get("/ui/dashboard", (c) => c.html(<DashboardLive d={dashboardData(s, recent)} />));

  return app;
}
