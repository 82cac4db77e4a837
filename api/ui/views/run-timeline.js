// The run page's timeline: the run's phases (queued, context, plan, tasks) on top, then a
// waterfall of its tasks by start and end, as of the replay scrubber's event. A bar per task
// (running ones grow to "now"), its attempts written on it when Temporal retried it, reused
// tasks of a retry marked; big runs show their failed and retried tasks and a sample.
import { duration, el, fill, svg } from "../lib/dom.js";
import { GLYPH } from "./run-graph.js";

const ROWS = 300;
const ROW = 16;
const LABEL = 220;
const WIDTH = 1100;


/** The tasks to draw: all, or (past ROWS) the failed and retried ones and an even sample. */
function pick(tasks, attempts) {
  const started = tasks.filter((t) => t.start !== null || t.end !== null);
  const at = (t) => t.start ?? t.end;
  started.sort((a, b) => at(a) - at(b));
  if (started.length <= ROWS) return started;
  const marked = started.filter((t) => t.status === "failed" || t.status === "retrying" || (attempts(t.id) || 1) > 1).slice(0, ROWS / 2);
  const keep = new Set(marked);
  const stride = started.length / (ROWS - keep.size);
  for (let i = 0; keep.size < ROWS && i < started.length; i += stride) keep.add(started[Math.floor(i)]);
  return started.filter((t) => keep.has(t));
}

export class TimelineView {
  /** `onSelect(taskId)` when a bar is clicked; `attempts(taskId)` the attempts the run log knows. */
  constructor(onSelect, attempts) {
    this.onSelect = onSelect;
    this.attempts = attempts;
    this.note = el("span", { class: "muted" });
    this.chart = el("div", { class: "timeline", "data-testid": "timeline" });
    this.root = el("div", {}, el("h3", {}, "Timeline ", this.note), this.chart);
  }

  /** Draws `model` up to `now` (ms: the scrubber's event, or the clock while the run is live). */
  render(model, now) {
    const t0 = model.start;
    if (t0 === null) return fill(this.chart, el("p", { class: "muted" }, "nothing yet"));
    const t1 = Math.max(now, t0 + 1);
    const span = t1 - t0;
    const x = (t) => LABEL + ((Math.min(t, t1) - t0) / span) * (WIDTH - LABEL - 60);
    const tasks = pick([...model.tasks.values()], this.attempts);
    const phases = [["queued", model.phases.queued], ["context", model.phases.context], ["plan", model.phases.plan], ["tasks", model.phases.tasks]]
      .filter(([, p]) => p);
    const height = 24 + (phases.length + tasks.length) * ROW + 8;
    const ticks = [];
    for (let i = 0; i <= 4; i++) {
      const t = t0 + (span * i) / 4;
      ticks.push(svg("line", { x1: x(t), x2: x(t), y1: 16, y2: height, class: "tick" }),
        svg("text", { x: x(t), y: 12, "text-anchor": "middle", class: "tick-label" }, `+${duration(t - t0) || "0 ms"}`));
    }
    const rows = [];
    let y = 24;
    for (const [name, [from, to]] of phases) {
      const end = to ?? t1;
      rows.push(svg("text", { x: 4, y: y + 11, class: "phase-label" }, name),
        svg("rect", { x: x(from), y: y + 2, width: Math.max(2, x(end) - x(from)), height: ROW - 4, rx: 2,
          class: `phase ${name}${to === undefined ? " open" : ""}`, "data-testid": "timeline-phase", "data-phase": name },
        svg("title", {}, `${name}: ${duration(end - from)}${to === undefined ? " so far" : ""}`)));
      y += ROW;
    }
    for (const t of tasks) {
      const from = t.start ?? t.end;
      const finished = t.end !== null && ["completed", "failed", "cancelled", "skipped"].includes(t.status);
      const to = finished ? t.end : t1;
      const tries = this.attempts(t.id) || 1;
      const label = t.id.startsWith("job:") ? t.id : t.id.slice(model.run.length + 1);
      const bar = svg("rect", { x: x(from), y: y + 3, width: Math.max(3, x(to) - x(from)), height: ROW - 6, rx: 2,
        class: `bar-${t.status}${t.reused ? " reused" : ""}`, "data-testid": "timeline-bar", "data-task": t.id, "data-status": t.status,
        "data-attempts": tries, "data-ms": Math.round(to - from) },
      svg("title", {}, `${t.id}: ${t.status}${t.reused ? " (reused from the retried run)" : ""}, ${duration(to - from)}${finished ? "" : " so far"}${tries > 1 ? `, ${tries} attempts` : ""}`));
      const row = svg("g", { class: "timeline-row" },
        svg("text", { x: 4, y: y + 12, class: "task-label" }, `${GLYPH[t.status] || ""} ${label.length > 30 ? `…${label.slice(-29)}` : label}`),
        bar,
        tries > 1 ? svg("text", { x: x(to) + 4, y: y + 12, class: "retries", "data-testid": "timeline-retries" }, `↻ ${tries} attempts`) : null,
        t.reused ? svg("text", { x: x(to) + 4, y: y + 12, class: "retries" }, "reused") : null);
      row.addEventListener("click", () => this.onSelect(t.id));
      rows.push(row);
      y += ROW;
    }
    const all = [...model.tasks.values()].filter((t) => t.start !== null || t.end !== null).length;
    this.note.textContent = all > tasks.length ? `(${tasks.length} of ${all} tasks: failed and retried first, then a sample)` : "";
    fill(this.chart, svg("svg", { viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height }, ...ticks, ...rows));
  }
}
