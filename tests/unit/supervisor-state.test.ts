import { describe, expect, test } from "bun:test";
import { EventBus, type AppEvents } from "../../src/events";
import type { ProcessState } from "../../src/supervisor/types";
import { canTransition, InvalidTransitionError, ModelState, STATUS_OF, TRANSITIONS } from "../../src/supervisor/state";

const ALL: ProcessState[] = ["stopped", "loading", "running", "stopping", "error"];

describe("state transition table", () => {
  test("allows exactly the documented lifecycle moves", () => {
    const allowed = ALL.flatMap((from) => ALL.filter((to) => canTransition(from, to)).map((to) => `${from}->${to}`));
    expect(allowed.sort()).toEqual(
      [
        "stopped->loading",
        "loading->running",
        "loading->error",
        "loading->stopping",
        "running->stopping",
        "running->error",
        "stopping->stopped",
        "error->loading",
        "error->stopped",
      ].sort(),
    );
  });

  test("every internal state shows as one of the reference's statuses", () => {
    for (const st of ALL) expect(["running", "loading", "stopped", "error", "discovered"]).toContain(STATUS_OF[st]);
    expect(STATUS_OF.stopping).toBe("running");
  });

  test("a process cannot jump from stopped straight to running", () => {
    const s = new ModelState("m");
    expect(() => s.set("running")).toThrow(InvalidTransitionError);
    expect(s.state).toBe("stopped");
  });

  test("each forbidden transition throws and leaves the state unchanged", () => {
    for (const from of ALL) {
      for (const to of ALL) {
        if (TRANSITIONS[from].includes(to)) continue;
        const s = new ModelState("m");
        // Walk to `from` through legal moves.
        const path: Record<ProcessState, ProcessState[]> = {
          stopped: [],
          loading: ["loading"],
          running: ["loading", "running"],
          stopping: ["loading", "running", "stopping"],
          error: ["loading", "error"],
        };
        for (const step of path[from]) s.set(step);
        expect(s.state).toBe(from);
        expect(() => s.set(to)).toThrow(`${from} -> ${to}`);
        expect(s.state).toBe(from);
      }
    }
  });

  test("every change is announced on the bus with API status, previous, internal state and detail", () => {
    const bus = new EventBus();
    const seen: AppEvents["model.status"][] = [];
    bus.on("model.status", (e) => seen.push(e));
    const s = new ModelState("m1", bus);
    s.set("loading", "starting");
    s.set("running");
    s.set("stopping", "stopping");
    s.set("stopped");
    expect(seen.map((e) => [e.status, e.previous, e.state, e.detail])).toEqual([
      ["loading", "stopped", "loading", "starting"],
      ["running", "loading", "running", undefined],
      ["running", "running", "stopping", "stopping"],
      ["stopped", "running", "stopped", undefined],
    ]);
    expect(seen.every((e) => e.modelId === "m1" && !Number.isNaN(Date.parse(e.at)))).toBe(true);
  });
});
