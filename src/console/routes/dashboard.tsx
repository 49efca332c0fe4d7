/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import type { Services } from "../../services";
import { LiveQueue } from "../activity";
import { DashboardPage } from "../pages/dashboard";
import { DashboardLive } from "../partials/dashboard";
import { dashboardData } from "../data";

/** The dashboard page and its live fragment. */
export function dashboardRoutes(s: Services) {
  const app = new Hono();
  app.get("/", (c) => c.html(<DashboardPage d={dashboardData(s)} queue={<LiveQueue requests={s.tracker.list()} />} />));
  app.get("/ui/dashboard", (c) => c.html(<DashboardLive d={dashboardData(s)} />));

  return app;
}
