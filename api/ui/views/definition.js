// One definition: its document, version diffs (structural and behavioural), trigger
// decisions, its last runs' durations and outcomes (a chart), notifications, next fires
// (cron), a dry-run form and "Run now".
import { NeedsKey, api } from "../lib/api.js";
import { durationChart } from "../lib/chart.js";
import { badge, el, enc, fill, main, pretty, throttle, when } from "../lib/dom.js";
import { onLeave, showError } from "../lib/router.js";

/** Fills the page with definition `id`. */
export async function definitionView(id) {
  const [current, versions] = await Promise.all([api(`/api/v1/definitions/${enc(id)}`), api(`/api/v1/definitions/${enc(id)}/versions`)]);
  const def = current.definition;
  const diffOut = el("div", { class: "diff" });
  const from = el("select", {}, versions.versions.map((v) => el("option", { value: v.version }, `v${v.version}`)));
  const to = el("select", {}, versions.versions.map((v) => el("option", { value: v.version }, `v${v.version}`)));
  if (versions.versions.length > 1) from.value = versions.versions[1].version;
  const showDiff = async () => {
    const d = await api(`/api/v1/definitions/${enc(id)}/diff?from=${from.value}&to=${to.value}`);
    fill(diffOut, d.changes.length ? el("table", {}, d.changes.map((c) => el("tr", { class: c.op },
      el("td", {}, c.op), el("td", {}, c.path), el("td", {}, JSON.stringify(c.from ?? null)), el("td", {}, JSON.stringify(c.to ?? null))))) : "no changes");
  };
  const behaviourOut = el("div", { class: "diff" });
  const showBehaviour = async () => {
    try {
      // The dry-run form's sample event(s), when given, are replayed too: an array one by one.
      const sample = event.value.trim() ? JSON.parse(event.value) : null;
      const d = sample === null
        ? await api(`/api/v1/definitions/${enc(id)}/diff/behaviour?from=${from.value}&to=${to.value}&last=10`)
        : await api(`/api/v1/definitions/${enc(id)}/diff/behaviour`, { method: "POST",
          body: JSON.stringify({ from: Number(from.value), to: Number(to.value), last: 10, events: Array.isArray(sample) ? sample : [sample] }) });
      const s = d.summary;
      const side = (v) => v.error ? `v${v.version} fails: ${v.error}` : v.fires ? `v${v.version}: ${v.tasks} task(s)` : `v${v.version}: no run (${v.not_fired_because})`;
      fill(behaviourOut, el("p", {}, `${s.replayed} recorded trigger(s) replayed, ${s.differing} behave differently: `,
          `+${s.tasks_added} −${s.tasks_removed} ~${s.tasks_changed} task(s), ${s.fire_changes} fire change(s)`),
        el("table", {}, el("tr", {}, ...["run", "old", "new", "tasks"].map((h) => el("th", {}, h))),
          d.triggers.map((t) => el("tr", {}, el("td", {}, t.recorded === "run" ? el("a", { href: `#/runs/${enc(t.workflow_id)}` }, t.workflow_id) : `${t.workflow_id} (${t.recorded.replace("_", " ")})`),
            el("td", {}, side(t.from)), el("td", {}, side(t.to)),
            el("td", {}, ...t.added.map((a) => el("div", { class: "added" }, `+ ${a.template_id}/${a.item_key}`)),
              ...t.removed.map((r) => el("div", { class: "removed" }, `− ${r.template_id}/${r.item_key}`)),
              ...t.changed.map((c) => el("div", {}, `~ ${c.task_id.split("/").slice(-2).join("/")}: ${c.changes.map((x) => x.path).join(", ")}`)),
              ...t.warnings.map((w) => el("div", { class: "muted" }, `! ${w}`)))))));
    } catch (e) {
      fill(behaviourOut, el("div", { class: "error-box" }, String(e.message)));
    }
  };
  const decisionsOut = el("div", {}, el("span", { class: "muted" }, "loading…"));
  const outcomeColour = { fired: "completed", fired_zero_tasks: "waiting", skipped: "failed", deduplicated: "skipped", filtered: "skipped", error: "failed", accepted: "waiting", queued: "waiting", debounced: "skipped", batched: "skipped" };
  api(`/api/v1/definitions/${enc(id)}/decisions?limit=50`).then((log) => {
    fill(decisionsOut,
      el("p", { class: "counters" }, ...Object.entries(log.counts).map(([k, v]) => el("span", {}, `${k}: ${v}`)),
        log.schedule ? el("span", { class: "muted" }, `Temporal: ${log.schedule.overlap_skipped} overlap-skipped, ${log.schedule.missed_catchup_window} missed catch-up${log.schedule.paused ? ", paused" : ""}`) : ""),
      log.observer_error ? el("div", { class: "error-box" }, log.observer_error) : "",
      log.decisions.length ? el("table", { class: "decisions" }, el("tr", {}, ...["when", "source", "outcome", "why", "run"].map((h) => el("th", {}, h))),
        log.decisions.map((d) => el("tr", {}, el("td", {}, when(d.slot || d.recorded_at)), el("td", {}, d.source),
          el("td", {}, el("span", { class: `badge ${outcomeColour[d.outcome] || ""}` }, d.outcome)), el("td", {}, d.message),
          el("td", {}, d.workflow_id ? el("a", { href: `#/runs/${enc(d.workflow_id)}` }, "run") : "")))) : el("p", { class: "muted" }, "no trigger seen yet"));
  }).catch((e) => fill(decisionsOut, el("div", { class: "error-box" }, String(e.message))));
  // The last 50 runs, redrawn (throttled) when the global stream announces a run change:
  // its note names the run, not the definition, so any change redraws.
  const runsOut = el("div", { "data-testid": "definition-runs" }, el("span", { class: "muted" }, "loading…"));
  let runLoads = 0;
  const loadRuns = () => {
    const mine = ++runLoads; // only the latest answer draws
    return api(`/api/v1/runs?definition_id=${enc(id)}&limit=50`).then((page) => mine === runLoads && fill(runsOut, durationChart(page.runs)))
      .catch((e) => (e instanceof NeedsKey ? showError(e) : mine === runLoads && fill(runsOut, el("div", { class: "error-box" }, String(e.message)))));
  };
  loadRuns();
  const redraw = throttle(loadRuns, 1000);
  window.addEventListener("run-change", redraw);
  onLeave(() => window.removeEventListener("run-change", redraw));
  const notificationsOut = el("div", { "data-testid": "notifications" }, el("span", { class: "muted" }, "loading…"));
  const deliveryColour = { delivered: "completed", pending: "waiting", failed: "failed" };
  api(`/api/v1/definitions/${enc(id)}/notifications?limit=20`).then((list) => fill(notificationsOut,
    list.notifications.length ? el("table", { class: "notifications" }, el("tr", {}, ...["when", "kind", "entry", "status", "attempts", "HTTP", "error", "run"].map((h) => el("th", {}, h))),
      list.notifications.map((n) => el("tr", { "data-kind": n.kind, "data-status": n.status }, el("td", {}, when(n.delivered_at || n.created_at)), el("td", {}, n.kind),
        el("td", {}, String(n.entry)), el("td", {}, el("span", { class: `badge ${deliveryColour[n.status] || ""}` }, n.status)),
        el("td", {}, String(n.attempts)), el("td", {}, n.http_status ?? ""), el("td", {}, n.error ?? ""),
        el("td", {}, n.run_workflow_id ? el("a", { href: `#/runs/${enc(n.run_workflow_id)}` }, "run") : ""))))
      : el("p", { class: "muted" }, def.notify && def.notify.length ? "nothing sent yet" : "no notify entries in this definition")))
    .catch((e) => fill(notificationsOut, el("div", { class: "error-box" }, String(e.message))));
  const fires = el("div");
  if (def.trigger.kind === "cron") {
    api(`/api/v1/definitions/${enc(id)}/preview?count=10`).then((p) => fill(fires,
      el("table", {}, el("tr", {}, el("th", {}, "UTC"), el("th", {}, `local (${p.timezone})`)),
        p.fires.map((f) => el("tr", {}, el("td", {}, f.utc), el("td", {}, f.local)))),
      ...p.warnings.map((w) => el("div", { class: "warn-box" }, `⚠ ${w.message}`)))).catch((e) => fill(fires, String(e.message)));
  }
  const event = el("textarea", { placeholder: '{"type": "repo.pushed", "key": "abc", "payload": {}}' });
  const payload = el("textarea", { placeholder: "payload of a manual run (JSON)" });
  const context = el("textarea", { placeholder: '{"source_name": [ ... ]} (optional overrides)' });
  const dryOut = el("div");
  const parse = (area) => (area.value.trim() ? JSON.parse(area.value) : undefined);
  const dryRun = async () => {
    try {
      const body = { event: parse(event), payload: parse(payload), context: parse(context) || {} };
      const r = await api(`/api/v1/definitions/${enc(id)}/dry-run`, { method: "POST", body: JSON.stringify(body) });
      const paramsOf = (d) => (r.plan.tasks.find((t) => t.template_id === d.template_id && t.item_key === d.item_key) || {}).params;
      fill(dryOut,
        el("p", {}, `${r.summary.spawn} spawn, ${r.summary.skip} skip, ${r.summary.deferred} deferred`,
          r.filter && r.filter.expression ? ` — filter ${r.filter.holds ? "holds" : "does not hold"}` : ""),
        el("table", {}, el("tr", {}, ...["template", "item", "outcome", "reason", "params"].map((h) => el("th", {}, h))),
          r.plan.decisions.map((d) => el("tr", {}, el("td", {}, d.template_id), el("td", {}, d.item_key ?? "-"),
            el("td", {}, badge(d.outcome === "spawn" ? "completed" : d.outcome === "skip" ? "skipped" : "waiting")), el("td", {}, d.reason),
            el("td", {}, paramsOf(d) ? pretty(paramsOf(d)) : "")))));
    } catch (e) {
      fill(dryOut, el("div", { class: "error-box" }, String(e.message)));
    }
  };
  const trigger = async () => {
    const r = await api(`/api/v1/definitions/${enc(id)}/runs`, { method: "POST", body: JSON.stringify({ payload: parse(payload) ?? null }) });
    location.hash = `#/runs/${enc(r.workflow_id)}`;
  };
  fill(main,
    el("h2", {}, `${def.name} `, el("span", { class: "muted" }, `${id} · v${current.version}`)),
    el("div", { class: "row" },
      el("div", { class: "grow card" }, el("h3", {}, "Document"), pretty(def)),
      el("div", { class: "grow" },
        el("div", { class: "card" }, el("h3", {}, "Versions"), "from ", from, " to ", to, " ", el("button", { onclick: showDiff }, "Diff"), " ",
          el("button", { onclick: showBehaviour, title: "Replay the last 10 recorded triggers, and the dry-run form's sample event(s), through both versions" }, "Behavioural diff"), diffOut, behaviourOut),
        el("div", { class: "card" }, el("h3", {}, "Trigger decisions"), decisionsOut),
        el("div", { class: "card" }, el("h3", {}, "Runs ", el("a", { href: `#/runs?definition_id=${enc(id)}`, class: "muted" }, "(list)")), runsOut),
        el("div", { class: "card" }, el("h3", {}, "Notifications"), notificationsOut),
        def.trigger.kind === "cron" ? el("div", { class: "card" }, el("h3", {}, "Next fires"), fires) : "",
        el("div", { class: "card" }, el("h3", {}, "Dry-run"), el("label", {}, "sample event"), event, el("label", {}, "payload"), payload,
          el("label", {}, "context overrides"), context, el("p", {}, el("button", { onclick: dryRun }, "Dry-run"), " ",
            el("button", { class: "primary", onclick: trigger }, "Run now")), dryOut))));
}
