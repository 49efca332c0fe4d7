import type { CommandResult, Connection } from "./connection";
import { TOPICS, UPDATE_EVENT, type ClientCommand, type RealtimeError, type RealtimeSources, type Topic } from "./types";

/** Who is subscribed to which topic (the broadcaster sends to these). */
export class TopicMembers {
  private readonly members: Record<Topic, Set<Connection>> = {
    metrics: new Set(),
    models: new Set(),
    logs: new Set(),
    requests: new Set(),
    activity: new Set(),
  };

  of(topic: Topic): ReadonlySet<Connection> {
    return this.members[topic];
  }

  add(topic: Topic, conn: Connection): void {
    this.members[topic].add(conn);
  }

  delete(topic: Topic, conn: Connection): void {
    this.members[topic].delete(conn);
  }

  /** A closed connection leaves every topic. */
  forget(conn: Connection): void {
    for (const topic of TOPICS) this.members[topic].delete(conn);
  }
}

/** The current state of a topic: what a new subscriber gets at once. */
export function topicState(topic: Topic, sources: RealtimeSources, tails: { logs: number; activity: number }): unknown {
  const timestamp = new Date().toISOString();
  switch (topic) {
    case "metrics":
      return sources.metrics();
    case "models":
      return { models: sources.models(), timestamp };
    case "logs":
      return { logs: sources.recentLogs(tails.logs), timestamp };
    case "requests":
      return { ...sources.liveRequests(), timestamp };
    case "activity":
      // The newest rows, newest first (like GET /api/activity); later pushes carry only new rows.
      return { entries: sources.recentActivity(tails.activity), timestamp };
  }
}

export interface CommandDeps {
  members: TopicMembers;
  /** The topic's current state (throws when it cannot be read). */
  stateOf(topic: Topic): unknown;
  /** Sends the log lines still waiting, before a new logs subscriber joins. */
  flushLogs(): void;
  logError(message: string): void;
}

/** A client's command (subscribe, unsubscribe, ping), the same for every protocol. */
export function executeCommand(conn: Connection, command: ClientCommand, deps: CommandDeps): CommandResult {
  switch (command.kind) {
    case "ping":
      return { ok: true, reply: { type: "pong", data: { timestamp: new Date().toISOString() } } };
    case "subscribe": {
      const { topic } = command;
      let state: unknown;
      try {
        state = deps.stateOf(topic);
      } catch (err) {
        deps.logError(`realtime: cannot build ${topic} state: ${(err as Error).message}`);
        return { ok: false, error: { code: "INTERNAL_ERROR", message: `Cannot read ${topic} right now` } satisfies RealtimeError };
      }
      // Pending log lines go to the existing subscribers first, so the newcomer's tail and the
      // next logs_update never overlap.
      if (topic === "logs") deps.flushLogs();
      conn.subscriptions.add(topic);
      deps.members.add(topic, conn);
      conn.bindTopic(topic);
      return {
        ok: true,
        reply: { type: "subscribed", data: { type: topic, subscriptions: [...conn.subscriptions] } },
        // The current state straight away, so a new page is not empty until the next tick.
        // (Metrics before the collector's first sample: nothing yet; the first sample follows.)
        after: () => {
          if (state !== null) conn.sendEvent(UPDATE_EVENT[topic], state);
        },
      };
    }
    case "unsubscribe": {
      const { topic } = command;
      conn.subscriptions.delete(topic);
      deps.members.delete(topic, conn);
      conn.unbindTopic(topic);
      return { ok: true, reply: { type: "unsubscribed", data: { type: topic, subscriptions: [...conn.subscriptions] } } };
    }
  }
}
