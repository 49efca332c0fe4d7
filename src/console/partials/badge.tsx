/** @jsxImportSource hono/jsx */
import type { ModelStatus } from "../../models/types";

const LABEL: Record<ModelStatus, string> = {
  running: "running",
  loading: "loading",
  stopped: "stopped",
  error: "error",
  discovered: "discovered",
};

/** The status badge: text first (readable without colour), colour from data-status in app.css. */
export function StatusBadge(props: { status: ModelStatus; detail?: string }) {
  return (
    <span class="badge" data-status={props.status} title={props.detail ?? LABEL[props.status]}>
      {props.status === "loading" ? <span class="spinner" aria-hidden="true"></span> : null}
      {LABEL[props.status]}
    </span>
  );
}

/** A generic health pill (healthy / unhealthy / idle / ...). */
export function Pill(props: { tone: "ok" | "warn" | "bad" | "idle"; children: string }) {
  return (
    <span class="pill" data-tone={props.tone}>
      {props.children}
    </span>
  );
}
