// Small SVG charts drawn from API answers (no library): the definition page's run durations,
// and the run durations the runs list shows too (their human format is `duration` in dom.js).
import { duration, el, enc, svg } from "./dom.js";

/** A run is open until the run log has its end. */
export const isOpen = (run) => !run.finished_at;

/** A run's duration in ms: to its end, or to `now` while it is open. */
export function durationMs(run, now = Date.now()) {
  const end = run.finished_at ? Date.parse(run.finished_at) : now;
  return Math.max(0, end - Date.parse(run.fired_at));
}

/** The nearest-rank percentile `p` (0–100) of ascending `sorted`; null when it is empty. */
export function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1];
}

/**
 * What the runs say: how many, how many finished, the share of finished runs that completed
 * (null when none finished), and p50/p95 of the finished runs' durations.
 */
export function runStats(runs) {
  const finished = runs.filter((r) => !isOpen(r));
  const durations = finished.map((r) => durationMs(r)).sort((a, b) => a - b);
  return {
    count: runs.length,
    finished: finished.length,
    successRate: finished.length ? finished.filter((r) => r.status === "completed").length / finished.length : null,
    p50: percentile(durations, 50),
    p95: percentile(durations, 95),
  };
}



// Each outcome has a colour (lists.css, from style.css's variables) AND a shape, so the chart
// reads without colour too; the legend shows both.
const SHAPES = {
  completed: "circle", failed: "cross", cancelled: "square", terminated: "square", timed_out: "square",
  skipped: "diamond", running: "circle", queued: "diamond",
};

/** The path of a mark's shape of radius `r` centred on (x, y). */
function shapeAt(shape, x, y, r) {
  switch (shape) {
    case "cross": return svg("path", { d: `M${x - r} ${y - r}L${x + r} ${y + r}M${x - r} ${y + r}L${x + r} ${y - r}` });
    case "square": return svg("rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r });
    case "diamond": return svg("path", { d: `M${x} ${y - r - 1}L${x + r + 1} ${y}L${x} ${y + r + 1}L${x - r - 1} ${y}Z` });
    default: return svg("circle", { cx: x, cy: y, r });
  }
}

/** Ticks covering 0..max: about `count` steps of 1, 2 or 5 × 10^k. */
function niceTicks(max, count) {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  // From 0 to the first tick at or above `max`, so the highest mark is inside the chart.
  const ticks = [0];
  while (ticks[ticks.length - 1] < max) ticks.push(ticks.length * step);
  return ticks;
}

const W = 480, H = 220, LEFT = 52, RIGHT = 36, TOP = 12, BOTTOM = 42;

/**
 * The chart of `runs` (a definition's, newest first as the API answers): x is when each run
 * fired, y how long it took (open runs: so far, drawn hollow and dashed); each mark links to
 * its run. Next to it, the stats of `runStats`. `now` is the end of open runs.
 */
export function durationChart(runs, now = Date.now()) {
  if (!runs.length) return el("div", { "data-testid": "duration-chart-empty" }, el("p", { class: "muted" }, "no runs yet"));
  const points = runs.map((r) => ({ run: r, t: Date.parse(r.fired_at), ms: durationMs(r, now), open: isOpen(r) }));
  let t0 = Math.min(...points.map((p) => p.t)), t1 = Math.max(...points.map((p) => p.t));
  if (t1 - t0 < 1000) { t0 -= 30000; t1 += 30000; }
  const pad = (t1 - t0) * 0.04;
  t0 -= pad; t1 += pad;
  const maxS = Math.max(...points.map((p) => p.ms)) / 1000 || 1;
  const yTicks = niceTicks(maxS * 1.05, 4);
  const yMax = yTicks[yTicks.length - 1];
  const x = (t) => LEFT + ((t - t0) / (t1 - t0)) * (W - LEFT - RIGHT);
  const y = (s) => H - BOTTOM - (s / yMax) * (H - TOP - BOTTOM);
  const sameDay = new Date(t0).toDateString() === new Date(t1).toDateString();
  const timeLabel = (t) => (sameDay ? new Date(t).toLocaleTimeString() : new Date(t).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }));
  const xTicks = [0, 1, 2, 3].map((i) => t0 + pad + (i / 3) * (t1 - t0 - 2 * pad));
  const secondsLabel = (s) => (yMax < 1 ? s.toFixed(2) : yMax < 10 ? s.toFixed(1) : String(Math.round(s)));

  const chart = svg("svg", { "data-testid": "duration-chart", class: "duration-chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `Durations of the last ${runs.length} runs` },
    svg("title", {}, `Durations of the last ${runs.length} runs`),
    // Axes, grid and labels.
    yTicks.map((s) => svg("g", { class: "tick" },
      svg("line", { x1: LEFT, x2: W - RIGHT, y1: y(s), y2: y(s), class: "grid" }),
      svg("text", { x: LEFT - 6, y: y(s) + 4, "text-anchor": "end" }, secondsLabel(s)))),
    xTicks.map((t) => svg("text", { class: "tick", x: x(t), y: H - BOTTOM + 16, "text-anchor": "middle" }, timeLabel(t))),
    svg("line", { class: "axis", x1: LEFT, x2: W - RIGHT, y1: H - BOTTOM, y2: H - BOTTOM }),
    svg("line", { class: "axis", x1: LEFT, x2: LEFT, y1: TOP, y2: H - BOTTOM }),
    svg("text", { class: "axis-label", x: (LEFT + W - RIGHT) / 2, y: H - 6, "text-anchor": "middle" }, "start time"),
    svg("text", { class: "axis-label", x: 12, y: (TOP + H - BOTTOM) / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${(TOP + H - BOTTOM) / 2})` }, "duration (s)"),
    // Oldest first, so the newest is drawn on top.
    points.slice().reverse().map((p) => svg("a", { href: `#/runs/${enc(p.run.workflow_id)}`, "data-testid": "duration-mark",
      "data-status": p.run.status, "data-workflow-id": p.run.workflow_id, class: `mark ${p.run.status}${p.open ? " open" : ""}` },
      svg("title", {}, `${p.run.workflow_id}\n${p.run.status} · ${duration(p.ms)}${p.open ? " so far" : ""}\n${new Date(p.t).toLocaleString()}`),
      shapeAt(SHAPES[p.run.status] || "circle", x(p.t), y(p.ms / 1000), 5))));

  const counts = {};
  for (const r of runs) counts[r.status] = (counts[r.status] || 0) + 1;
  const legend = el("div", { class: "chart-legend", "data-testid": "duration-legend" }, Object.entries(counts).map(([status, n]) =>
    el("span", { "data-status": status }, svg("svg", { viewBox: "0 0 14 14", width: 14, height: 14, class: `mark ${status}${status === "running" || status === "queued" ? " open" : ""}`, "aria-hidden": "true" },
      shapeAt(SHAPES[status] || "circle", 7, 7, 5)), ` ${status.replace("_", " ")}: ${n}`)),
    el("span", { class: "muted" }, "hollow, dashed: still open (duration so far)"));

  const s = runStats(runs);
  const stats = el("dl", { class: "run-stats", "data-testid": "run-stats", "data-count": s.count,
    "data-success-rate": s.successRate ?? "", "data-p50-ms": s.p50 ?? "", "data-p95-ms": s.p95 ?? "" },
    el("div", {}, el("dt", { title: "completed runs / finished runs" }, "success rate"), el("dd", {}, s.successRate === null ? "–" : `${Math.round(s.successRate * 1000) / 10} %`,
      el("span", { class: "muted" }, ` of ${s.finished} finished`))),
    el("div", {}, el("dt", { title: "median duration of the finished runs (nearest rank)" }, "p50 duration"), el("dd", {}, s.p50 === null ? "–" : duration(s.p50))),
    el("div", {}, el("dt", { title: "95th percentile duration of the finished runs (nearest rank)" }, "p95 duration"), el("dd", {}, s.p95 === null ? "–" : duration(s.p95))),
    el("div", {}, el("dt", {}, "runs counted"), el("dd", {}, String(s.count), el("span", { class: "muted" }, " (the last 50 at most)"))));

  return el("div", { class: "chart-card" }, stats, chart, legend);
}
