// The runs list, refreshed when the global stream announces a run-level change.
import { api } from "../lib/api.js";
import { badge, el, enc, fill, main, throttle, when } from "../lib/dom.js";
import { onLeave, showError } from "../lib/router.js";

/** Fills the page with the last 100 runs and keeps them fresh while it is shown. */
export async function runsView() {
  const table = el("table");
  const load = async () => {
    const { runs } = await api("/api/v1/runs?limit=100");
    fill(table, el("tr", {}, ...["run", "definition", "trigger", "status", "tasks", "done", "failed", "fired"].map((h) => el("th", {}, h))),
      runs.map((r) => el("tr", { class: "link", onclick: () => (location.hash = `#/runs/${enc(r.workflow_id)}`) },
        el("td", {}, r.workflow_id), el("td", {}, r.definition_id), el("td", {}, r.trigger_kind), el("td", {}, badge(r.status)),
        el("td", {}, r.tasks_planned), el("td", {}, r.tasks_completed), el("td", {}, r.tasks_failed), el("td", {}, when(r.fired_at)))));
  };
  await load();
  const refresh = throttle(() => load().catch(showError), 500);
  window.addEventListener("run-change", refresh);
  onLeave(() => window.removeEventListener("run-change", refresh));
  fill(main, el("h2", {}, "Runs ", el("span", { class: "muted" }, "(live)")), table);
}
