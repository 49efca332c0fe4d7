/** @jsxImportSource hono/jsx */
import { raw } from "hono/html";
import type { Child } from "hono/jsx";
import type { Topic } from "../realtime/types";
import { assetUrl } from "./assets";

export type PageId = "dashboard" | "models" | "activity" | "monitoring" | "logs" | "settings" | "playground";

const NAV: { id: PageId; href: string; label: string }[] = [
  { id: "dashboard", href: "/", label: "Dashboard" },
  { id: "models", href: "/models", label: "Models" },
  { id: "activity", href: "/activity", label: "Activity" },
  { id: "monitoring", href: "/monitoring", label: "Monitoring" },
  { id: "logs", href: "/logs", label: "Logs" },
  { id: "settings", href: "/settings", label: "Settings" },
  { id: "playground", href: "/playground", label: "Playground" },
];

/**
 * htmx 2 does not swap 4xx/5xx answers by default. Our fragment endpoints answer a failed form
 * with the same form showing its errors (400/409/422), so those are swapped too; anything else
 * that fails is reported by console.js in the notice area.
 */
const HTMX_CONFIG = JSON.stringify({
  responseHandling: [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "(400|404|409|422)", swap: true, error: false },
    { code: "...", swap: false, error: true },
  ],
  // Scripts inside swapped fragments are not needed (console.js reacts to htmx events).
  allowScriptTags: false,
  // Back/forward after a range switch (hx-push-url) reloads the page instead of restoring a
  // DOM snapshot: charts and the socket start fresh, nothing stale is shown.
  historyCacheSize: 0,
  refreshOnHistoryMiss: true,
});

export function Layout(props: {
  title: string;
  active: PageId;
  /** WebSocket topics this page wants. */
  topics: Topic[];
  /** Load uPlot (charts). */
  charts?: boolean;
  /** false: no live socket (the login page: it would only be refused). */
  socket?: boolean;
  children: Child;
}) {
  return (
    <>
    {raw("<!DOCTYPE html>")}
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <meta name="htmx-config" content={HTMX_CONFIG} />
        <title>{props.title} · Llama Async Proxy</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={assetUrl("app.css")} />
        {props.charts ? <link rel="stylesheet" href={assetUrl("uPlot.min.css")} /> : null}
        <script src={assetUrl("htmx.min.js")} defer></script>
        {props.charts ? <script src={assetUrl("uPlot.iife.min.js")} defer></script> : null}
        <script src={assetUrl("console.js")} defer></script>
      </head>
      <body data-page={props.active} data-topics={props.topics.join(" ")} data-socket={props.socket === false ? "off" : undefined}>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/">
            <span class="logo" aria-hidden="true"></span>Llama Async Proxy
          </a>
          <nav aria-label="Main">
            <ul>
              {NAV.map((n) => (
                <li>
                  <a href={n.href} aria-current={n.id === props.active ? "page" : undefined}>
                    {n.label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
          {/* Hidden until console.js runs (without JavaScript there are no live updates to show).
              The visible label counts down every second; only state changes are announced
              (the sr-only live region), so a screen reader is not read a clock. */}
          <span id="ws-status" class="ws-status" data-state="offline" title="Live updates" hidden>
            <span class="dot" aria-hidden="true"></span>
            <span class="label" aria-hidden="true">connecting…</span>
            <span class="sr-only" id="ws-announce" role="status" aria-live="polite"></span>
          </span>
        </header>
        <div id="notice" class="notice" role="alert" hidden></div>
        <main id="main">{props.children}</main>
      </body>
    </html>
    </>
  );
}
