// The run page's graph: one node per template, laid out in layers by the longest path from a
// root, SVG edges for every `depends_on` (and from a template to the external jobs lane when
// a job reported into one of its tasks), per-state counts, a progress bar and the task squares
// (failed first, then a sample, for big groups; expandable), with pan and zoom.
import { el, fill, svg } from "../lib/dom.js";
import { EXTERNAL } from "../lib/run-model.js";

const WIDTH = 240;
const GAP_X = 90;
const GAP_Y = 24;
const HEAD = 78;
const SQUARE = 17;
const PER_ROW = 12;
const SAMPLE = 48;
const EXPANDED = 2000;

/** A text glyph per state, so no state is told by colour alone. */
export const GLYPH = { pending: "○", queued: "⧗", running: "▶", waiting: "⏸", retrying: "↻", completed: "✓", failed: "✗", skipped: "⤼", cancelled: "⊘", terminated: "■", timed_out: "⌛" };


/**
 * Layers by longest path (a template sits one layer right of its deepest dependency), each
 * layer ordered by the mean position of its dependencies (fewer crossings), the external jobs
 * lane last. Answers `{layers: [[id]], layerOf: Map}`.
 */
export function layers(groups, withExternal) {
  const byId = new Map(groups.map((g) => [g.id, g]));
  const depth = new Map();
  const depthOf = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    const g = byId.get(id);
    if (!g || seen.has(id)) return 0;
    seen.add(id);
    const deps = g.depends_on.filter((d) => byId.has(d));
    const d = deps.length ? 1 + Math.max(...deps.map((x) => depthOf(x, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  const out = [];
  for (const g of groups) (out[depthOf(g.id)] = out[depthOf(g.id)] || []).push(g.id);
  const rows = out.filter(Boolean);
  const index = new Map();
  rows.forEach((row, r) => {
    if (r > 0) {
      const mean = (id) => {
        const deps = byId.get(id).depends_on.filter((d) => index.has(d));
        return deps.length ? deps.reduce((s, d) => s + index.get(d), 0) / deps.length : 0;
      };
      row.sort((a, b) => mean(a) - mean(b));
    }
    row.forEach((id, i) => index.set(id, i));
  });
  if (withExternal) rows.push([EXTERNAL]);
  return rows;
}

export class GraphView {
  /** `onSelect(taskId)` is called when a task square is clicked (not dragged). */
  constructor(onSelect) {
    this.onSelect = onSelect;
    this.expanded = new Set();
    this.view = { x: 0, y: 0, k: 1 };
    this.fitted = false;
    this.canvas = el("div", { class: "graph-canvas" });
    this.viewport = el("div", { class: "graph-viewport", "data-testid": "run-graph" }, this.canvas);
    const button = (text, title, fn) => el("button", { title, onclick: fn }, text);
    this.root = el("div", { class: "graph" },
      el("div", { class: "graph-tools" },
        button("+", "zoom in", () => this.zoom(1.25)), button("−", "zoom out", () => this.zoom(0.8)),
        button("fit", "fit the graph into view", () => this.fit()),
        el("span", { class: "muted" }, " drag to pan, wheel to zoom")),
      this.viewport);
    this.panning();
  }

  panning() {
    let drag = null;
    this.moved = false;
    this.viewport.addEventListener("mousedown", (e) => {
      if (e.button !== 0 || e.target.closest("button")) return;
      drag = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y };
      this.moved = false;
    });
    window.addEventListener("mousemove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) this.moved = true;
      this.view.x = drag.vx + dx;
      this.view.y = drag.vy + dy;
      this.apply();
    });
    window.addEventListener("mouseup", () => { drag = null; });
    this.viewport.addEventListener("wheel", (e) => {
      e.preventDefault();
      const box = this.viewport.getBoundingClientRect();
      this.zoom(e.deltaY < 0 ? 1.1 : 1 / 1.1, e.clientX - box.left, e.clientY - box.top);
    }, { passive: false });
  }

  zoom(factor, cx = this.viewport.clientWidth / 2, cy = this.viewport.clientHeight / 2) {
    const k = Math.min(3, Math.max(0.15, this.view.k * factor));
    this.view.x = cx - ((cx - this.view.x) * k) / this.view.k;
    this.view.y = cy - ((cy - this.view.y) * k) / this.view.k;
    this.view.k = k;
    this.apply();
  }

  /** Scales the whole graph into the viewport (never above 1). */
  fit() {
    const w = this.viewport.clientWidth || 1000;
    const h = this.viewport.clientHeight || 400;
    const k = Math.min(1, w / this.size.w, h / this.size.h);
    this.view = { x: (w - this.size.w * k) / 2, y: 0, k };
    this.apply();
  }

  apply() {
    this.canvas.style.transform = `translate(${this.view.x}px, ${this.view.y}px) scale(${this.view.k})`;
  }

  /**
   * Draws `graph` (the /graph answer: groups with totals and dependencies) as `model` (the
   * trace events up to the scrubber) says; `selected` is the task in the side panel.
   */
  render(graph, model, states, selected) {
    const jobs = model.groups.get(EXTERNAL)?.tasks || [];
    const rows = layers(graph.groups, jobs.length > 0);
    const byId = new Map(graph.groups.map((g) => [g.id, g]));
    const boxes = new Map();
    let width = 0;
    let height = 0;
    rows.forEach((row, r) => {
      let y = 12;
      for (const id of row) {
        const total = id === EXTERNAL ? jobs.length : Math.max(byId.get(id).total, model.groups.get(id)?.tasks.length || 0);
        const shown = Math.min(total, this.expanded.has(id) ? EXPANDED : SAMPLE);
        const h = HEAD + Math.ceil(shown / PER_ROW) * SQUARE + (total > SAMPLE ? 22 : 0);
        const box = { x: 12 + r * (WIDTH + GAP_X), y, h, total, shown };
        boxes.set(id, box);
        y += h + GAP_Y;
        width = Math.max(width, box.x + WIDTH + 12);
        height = Math.max(height, y);
      }
    });
    this.size = { w: width, h: height };
    const edges = [];
    for (const g of graph.groups) for (const d of g.depends_on) if (boxes.has(d)) edges.push([d, g.id]);
    // A template whose task (or the template itself) a job named as its node.
    const feeding = new Set();
    for (const job of jobs) {
      if (!job.node) continue;
      const group = byId.has(job.node) ? job.node : model.groupOf(job.node.startsWith(model.run) ? job.node : `${model.run}/${job.node}`);
      if (byId.has(group)) feeding.add(group);
    }
    for (const g of feeding) edges.push([g, EXTERNAL]);
    const paths = edges.map(([from, to]) => {
      const a = boxes.get(from);
      const b = boxes.get(to);
      const [x1, y1, x2, y2] = [a.x + WIDTH, a.y + 30, b.x, b.y + 30];
      const done = (model.groups.get(from)?.counts.completed || 0) === a.total && a.total > 0;
      return svg("path", { d: `M${x1},${y1} C${x1 + GAP_X / 2},${y1} ${x2 - GAP_X / 2},${y2} ${x2},${y2}`,
        class: `edge${done ? " done" : ""}${to === EXTERNAL ? " external" : ""}`, "data-testid": "edge", "data-from": from, "data-to": to, "marker-end": "url(#arrow)" },
      svg("title", {}, `${from} → ${to}`));
    });
    const lines = svg("svg", { class: "graph-edges", width, height },
      svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
        svg("path", { d: "M0,0 L10,5 L0,10 z" }))),
      ...paths);
    const nodes = [...boxes.entries()].map(([id, box]) => this.node(id, box, id === EXTERNAL ? null : byId.get(id), model, states, selected));
    fill(this.canvas, lines, ...nodes);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    this.viewport.style.height = `${Math.max(180, Math.min(560, height + 8))}px`;
    if (!this.fitted && this.viewport.clientWidth) {
      this.fitted = true;
      if (width > this.viewport.clientWidth || height > 560) this.fit(); else this.apply();
    }
  }

  node(id, box, group, model, states, selected) {
    const counts = id === EXTERNAL ? { ...(model.groups.get(EXTERNAL)?.counts || {}) } : model.countsOf(id, box.total);
    const list = model.groups.get(id)?.tasks || [];
    const total = Math.max(box.total, list.length);
    const failed = list.filter((t) => t.status === "failed");
    const rest = list.filter((t) => t.status !== "failed");
    const pendingSquares = Math.max(0, total - list.length);
    // Failed first, then the others in the order they appeared, then not-yet-seen ones.
    const squares = [...failed, ...rest].slice(0, box.shown).map((t) => el("div", {
      class: `task ${t.status}${t.group === EXTERNAL ? " external" : ""}${t.id === selected ? " selected" : ""}`,
      title: `${t.id}: ${t.status}`,
      onclick: () => { if (!this.moved) this.onSelect(t.id); },
    }));
    const placeholder = model.skippedTemplates.has(id) ? "skipped" : "pending";
    for (let i = 0; squares.length < box.shown && i < pendingSquares; i++) squares.push(el("div", { class: `task ${placeholder}`, title: placeholder }));
    const present = states.filter((s) => counts[s]);
    const bar = el("div", { class: "bar" }, present.map((s) =>
      el("div", { style: `width:${(100 * counts[s]) / Math.max(1, total)}%;background:var(--${s})`, title: `${s}: ${counts[s]}` })));
    const done = (counts.completed || 0) + (counts.failed || 0) + (counts.skipped || 0) + (counts.cancelled || 0);
    const big = total > SAMPLE;
    return el("div", { class: `group node${id === EXTERNAL ? " lane" : ""}`, "data-testid": "graph-node", "data-group": id,
      style: `left:${box.x}px;top:${box.y}px;width:${WIDTH}px;height:${box.h}px` },
      el("h4", {}, id, " ", el("span", { class: "muted" }, `${done}/${total}`),
        group && group.deferred ? el("span", { class: "muted" }, " · deferred") : null),
      el("div", { class: "node-counts", "data-testid": "group-counts" }, present.map((s) =>
        el("span", { class: `count ${s}`, "data-state": s, "data-count": counts[s], title: s }, `${GLYPH[s] || ""} ${counts[s]}`))),
      bar,
      el("div", { class: "tasks" }, squares),
      big ? el("button", { class: "link-button", onclick: () => { this.expanded.has(id) ? this.expanded.delete(id) : this.expanded.add(id); this.onExpand?.(); } },
        this.expanded.has(id) ? "show a sample" : `show ${Math.min(total, EXPANDED)} of ${total} (failed first)`) : null);
  }
}
