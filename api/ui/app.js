// taskfactory web UI: plain JavaScript, no build step. Every view reads the same HTTP API as
// the CLI; run pages derive their state from the run's trace events, which is also what the
// replay scrubber re-plays.
"use strict";

const STATUSES = ["pending", "running", "waiting", "retrying", "completed", "failed", "skipped"];
const $main = document.getElementById("main");
let config = { temporal_ui_url: null, namespace: "default" };
let cleanup = [];
// The API key lives in this browser only (localStorage); the API never serves pages with it.
let apiKey = localStorage.getItem("tf_api_key") || "";

class NeedsKey extends Error {}

/** A stream URL with the key as `access_token` (EventSource cannot send headers). */
function streamUrl(path) {
  return `${path}${path.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(apiKey)}`;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "content-type": "application/json", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}), ...(options.headers || {}) },
  });
  if (response.status === 401) throw new NeedsKey("an API key is needed");
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = body && body.error ? body.error : { message: response.statusText, details: [] };
    const details = (error.details || []).map((d) => `\n  ${d.path}: ${d.message}`).join("");
    throw new Error(`${error.message}${details}`);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces a node's children; arrays are flattened, null/false skipped (like `el`). */
function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return node;
}

const badge = (status) => el("span", { class: `badge ${status}` }, status);
const when = (t) => (t ? new Date(t).toLocaleString() : "");
const pretty = (v) => el("pre", {}, JSON.stringify(v, null, 2));
const enc = encodeURIComponent;

function throttle(fn, ms) {
  let timer = null;
  return (...args) => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(...args); }, ms);
  };
}

function askForKey(message) {
  const input = el("input", { type: "password", placeholder: "tfk_…", size: 60, value: apiKey });
  const save = () => { apiKey = input.value.trim(); localStorage.setItem("tf_api_key", apiKey); connectGlobalStream(); route(); };
  fill($main, el("div", { class: "card" }, el("h3", {}, "API key"), el("p", { class: "muted" }, message,
    " — `taskfactory dev` prints an admin key; `taskfactory keys create` makes others."), input, " ", el("button", { class: "primary", onclick: save }, "Use key")));
}

function showError(error) {
  if (error instanceof NeedsKey) return askForKey(apiKey ? "This key is unknown, revoked or expired." : "Enter an API key.");
  $main.prepend(el("div", { class: "card error-box" }, String(error.message || error)));
}

// ---- definitions ----

// The definitions list's filters (tag, search), kept while the page is open.
const definitionFilter = { tag: "", search: "" };

function filterDefinitions(change) {
  Object.assign(definitionFilter, change);
  definitionsView().catch(showError);
}

async function definitionsView() {
  const query = new URLSearchParams(Object.entries(definitionFilter).filter(([, v]) => v));
  const filtered = [...query.keys()].length > 0;
  const [{ definitions }, everything] = await Promise.all([api(`/api/v1/definitions?${query}`), filtered ? api("/api/v1/definitions") : null]);
  const allTags = [...new Set((everything || { definitions }).definitions.flatMap((d) => d.tags || []))].sort();
  const tagChip = (t) => el("span", { class: `tag${t === definitionFilter.tag ? " active" : ""}`, title: `only definitions tagged ${t}`,
    onclick: (e) => { e.stopPropagation(); filterDefinitions({ tag: t === definitionFilter.tag ? "" : t }); } }, t);
  const rows = definitions.map((d) => {
    const last = el("td", { class: "muted" }, "…");
    const next = el("td", { class: "muted" }, d.trigger_kind === "cron" ? "…" : "");
    api(`/api/v1/runs?definition_id=${enc(d.id)}&limit=1`).then(({ runs }) => {
      fill(last, runs.length ? badge(runs[0].status) : "never");
    }).catch(() => {});
    if (d.trigger_kind === "cron") {
      api(`/api/v1/definitions/${enc(d.id)}/schedule`).then((s) => {
        fill(next, s.paused ? badge("paused") : "", " ", when(s.next_fire_times[0]));
      }).catch((e) => fill(next, String(e.message)));
    }
    return el("tr", { class: "link", onclick: () => (location.hash = `#/definitions/${enc(d.id)}`) },
      el("td", {}, d.id), el("td", {}, d.name), el("td", {}, (d.tags || []).map(tagChip)), el("td", {}, d.trigger_kind),
      el("td", {}, d.enabled ? "enabled" : "disabled"), el("td", {}, `v${d.version}`), last, next);
  });
  const tagSelect = el("select", { "aria-label": "tag", onchange: () => filterDefinitions({ tag: tagSelect.value }) },
    el("option", { value: "" }, "all tags"), allTags.map((t) => el("option", { value: t }, t)));
  tagSelect.value = definitionFilter.tag;
  const search = el("input", { type: "search", placeholder: "search id or name", value: definitionFilter.search,
    onchange: () => filterDefinitions({ search: search.value.trim() }) });
  fill($main, el("h2", {}, "Definitions"),
    el("p", { class: "filters" }, tagSelect, " ", search, " ", filtered ? el("span", { class: "muted" }, `${definitions.length} shown`) : null),
    el("table", {}, el("tr", {}, ...["id", "name", "tags", "trigger", "state", "version", "last run", "next fire"].map((h) => el("th", {}, h))), rows));
}

async function definitionView(id) {
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
      const d = await api(`/api/v1/definitions/${enc(id)}/diff/behaviour?from=${from.value}&to=${to.value}&last=10`);
      const s = d.summary;
      const side = (v) => v.error ? `v${v.version} fails: ${v.error}` : v.fires ? `v${v.version}: ${v.tasks} task(s)` : `v${v.version}: no run (${v.not_fired_because})`;
      fill(behaviourOut, el("p", {}, `${s.replayed} recorded trigger(s) replayed, ${s.differing} behave differently: `,
          `+${s.tasks_added} −${s.tasks_removed} ~${s.tasks_changed} task(s), ${s.fire_changes} fire change(s)`),
        el("table", {}, el("tr", {}, ...["run", "old", "new", "tasks"].map((h) => el("th", {}, h))),
          d.triggers.map((t) => el("tr", {}, el("td", {}, t.recorded === "run" ? el("a", { href: `#/runs/${enc(t.workflow_id)}` }, t.workflow_id) : `${t.workflow_id} (filtered event)`),
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
  const outcomeColour = { fired: "completed", fired_zero_tasks: "waiting", skipped: "failed", deduplicated: "skipped", filtered: "skipped", error: "failed" };
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
  fill($main, 
    el("h2", {}, `${def.name} `, el("span", { class: "muted" }, `${id} · v${current.version}`)),
    el("div", { class: "row" },
      el("div", { class: "grow card" }, el("h3", {}, "Document"), pretty(def)),
      el("div", { class: "grow" },
        el("div", { class: "card" }, el("h3", {}, "Versions"), "from ", from, " to ", to, " ", el("button", { onclick: showDiff }, "Diff"), " ",
          el("button", { onclick: showBehaviour, title: "Replay the last 10 recorded triggers through both versions" }, "Behavioural diff"), diffOut, behaviourOut),
        el("div", { class: "card" }, el("h3", {}, "Trigger decisions"), decisionsOut),
        def.trigger.kind === "cron" ? el("div", { class: "card" }, el("h3", {}, "Next fires"), fires) : "",
        el("div", { class: "card" }, el("h3", {}, "Dry-run"), el("label", {}, "sample event"), event, el("label", {}, "payload"), payload,
          el("label", {}, "context overrides"), context, el("p", {}, el("button", { onclick: dryRun }, "Dry-run"), " ",
            el("button", { class: "primary", onclick: trigger }, "Run now")), dryOut))));
}

// ---- runs ----

async function runsView() {
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
  cleanup.push(() => window.removeEventListener("run-change", refresh));
  fill($main, el("h2", {}, "Runs ", el("span", { class: "muted" }, "(live)")), table);
}

/** Task and job states after the first `upTo` events. */
function deriveState(run, events, upTo) {
  const tasks = new Map();
  const skippedTemplates = new Map();
  let runStatus = "running";
  for (const e of events.slice(0, upTo)) {
    const id = e.node_id;
    if (e.type === "NODE_SKIPPED" && e.payload && e.payload.template_id) skippedTemplates.set(e.payload.template_id, e.message);
    if (e.type === "WORKFLOW_COMPLETED") runStatus = "completed";
    if (e.type === "WORKFLOW_FAILED") runStatus = "failed";
    if (!id) continue;
    const status = { NODE_STARTED: "running", NODE_WAITING: "waiting", NODE_COMPLETED: "completed", NODE_FAILED: "failed" }[e.type];
    const entry = tasks.get(id) || { id, status: "pending", group: id.startsWith("job:") ? "external jobs" : id.slice(run.length + 1).split("/")[0] };
    if (status) entry.status = entry.status === "failed" && status === "running" ? "retrying" : status;
    entry.last = e;
    tasks.set(id, entry);
  }
  return { tasks, skippedTemplates, runStatus };
}

async function runView(workflowId) {
  let graph = await api(`/api/v1/runs/${enc(workflowId)}/graph?expand_up_to=0`);
  let detail = await api(`/api/v1/runs/${enc(workflowId)}`);
  const events = [];
  for (let after = 0; ;) {
    const page = await api(`/api/v1/runs/${enc(workflowId)}/events?after=${after}&limit=1000`);
    events.push(...page.events);
    if (page.next === null) break;
    after = page.next;
  }
  let cursor = events.length;
  let follow = true;
  let selected = null;
  const expanded = new Set();
  const counters = el("div", { class: "counters" });
  const dag = el("div", { class: "dag" });
  const side = el("div", { class: "card", style: "width: 360px" }, el("p", { class: "muted" }, "Click a task for its details."));
  const scrub = el("input", { type: "range", min: 0, max: events.length, value: events.length });
  const scrubLabel = el("span", { class: "muted" });
  const followBox = el("input", { type: "checkbox", checked: true });
  const levelFilter = el("select", {}, ["all", "info", "warn", "error"].map((l) => el("option", { value: l }, l)));
  const nodeFilter = el("input", { placeholder: "filter by node" });
  const log = el("div", { class: "log" });

  const render = () => {
    const state = deriveState(workflowId, events, cursor);
    const totals = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    const byGroup = new Map();
    for (const g of graph.groups) byGroup.set(g.id, []);
    for (const t of state.tasks.values()) {
      if (!byGroup.has(t.group)) byGroup.set(t.group, []);
      byGroup.get(t.group).push(t);
    }
    // Planned tasks not yet started are pending; skipped templates skip what never started.
    for (const g of graph.groups) {
      const seen = byGroup.get(g.id).length;
      const missing = Math.max(0, g.total - seen);
      for (let i = 0; i < missing; i++) byGroup.get(g.id).push({ id: null, status: state.skippedTemplates.has(g.id) ? "skipped" : "pending", group: g.id });
    }
    for (const list of byGroup.values()) for (const t of list) totals[t.status] += 1;
    fill(counters, badge(state.runStatus), " ", ...STATUSES.filter((s) => totals[s]).map((s) => el("span", {}, `${s}: ${totals[s]}`)));
    // Columns by depth in the DAG.
    const depth = new Map();
    const depthOf = (id) => {
      if (depth.has(id)) return depth.get(id);
      const g = graph.groups.find((x) => x.id === id);
      const d = g && g.depends_on.length ? 1 + Math.max(...g.depends_on.map(depthOf)) : 0;
      depth.set(id, d);
      return d;
    };
    const columns = [];
    for (const id of byGroup.keys()) {
      const d = id === "external jobs" ? 0 : depthOf(id);
      (columns[d] = columns[d] || []).push(id);
    }
    fill(dag, ...columns.filter(Boolean).map((ids) => el("div", { class: "column" }, ids.map((id) => {
      const group = graph.groups.find((g) => g.id === id) || { depends_on: [], deferred: false };
      const list = byGroup.get(id).slice().sort((a, b) => (b.status === "failed") - (a.status === "failed"));
      const counts = Object.fromEntries(STATUSES.map((s) => [s, list.filter((t) => t.status === s).length]));
      const bar = el("div", { class: "bar" }, STATUSES.filter((s) => counts[s]).map((s) =>
        el("div", { style: `width:${(100 * counts[s]) / list.length}%;background:var(--${s})`, title: `${s}: ${counts[s]}` })));
      const big = list.length > 200 && !expanded.has(id);
      const shown = big ? list.filter((t) => t.status === "failed").slice(0, 20) : list.slice(0, 2000);
      return el("div", { class: "group" },
        el("h4", {}, id, " ", el("span", { class: "muted" }, `${list.length}`)),
        group.depends_on.length ? el("div", { class: "deps" }, `after ${group.depends_on.join(", ")}`) : null,
        bar,
        el("div", { class: "tasks" }, shown.map((t) => el("div", {
          class: `task ${t.status}${t.id && t.id.startsWith("job:") ? " external" : ""}${t.id && t.id === selected ? " selected" : ""}`,
          title: t.id ? `${t.id}: ${t.status}` : t.status,
          onclick: () => t.id && select(t.id),
        }))),
        big ? el("button", { onclick: () => { expanded.add(id); render(); } }, `show all ${list.length}`) : null);
    }))));
    scrubLabel.textContent = `event ${cursor} of ${events.length}`;
    const level = levelFilter.value;
    const node = nodeFilter.value.trim();
    const visible = events.slice(0, cursor).filter((e) => (level === "all" || e.level === level) && (!node || (e.node_id || "").includes(node)));
    fill(log, ...visible.slice(-500).map((e) => el("div", { class: e.level, title: JSON.stringify(e.payload) },
      `${String(e.seq).padStart(5)} ${e.ts.slice(11, 23)} ${e.type.padEnd(18)} ${e.node_id || "-"} ${e.message || ""}`)));
    if (follow) log.scrollTop = log.scrollHeight;
  };
  const scheduleRender = throttle(render, 200);

  const select = async (id) => {
    selected = id;
    render();
    if (id.startsWith("job:")) {
      fill(side, el("h3", {}, id), el("p", {}, "external job"), pretty(events.filter((e) => e.node_id === id)));
      return;
    }
    let task = detail.tasks.find((t) => t.id === id);
    if (!task || task.status === "running" || task.status === "pending") {
      detail = await api(`/api/v1/runs/${enc(workflowId)}`);
      task = detail.tasks.find((t) => t.id === id);
    }
    const link = config.temporal_ui_url ? el("a", { href: `${config.temporal_ui_url}/namespaces/${enc(config.namespace)}/workflows/${enc(id)}`, target: "_blank" }, "open in the Temporal Web UI") : null;
    fill(side, el("h3", {}, id), link,
      task ? [el("p", {}, badge(task.status), ` attempt ${task.attempt} · ${when(task.started_at)} → ${when(task.finished_at)}`),
        el("h4", {}, "params"), pretty(task.params), el("h4", {}, "output"), pretty(task.output),
        task.error ? [el("h4", {}, "error"), el("div", { class: "error-box" }, task.error)] : null]
        : el("p", { class: "muted" }, "not in the first 1,000 tasks of the run detail"));
  };

  scrub.addEventListener("input", () => {
    cursor = Number(scrub.value);
    follow = cursor === events.length;
    followBox.checked = follow;
    render();
  });
  followBox.addEventListener("change", () => { follow = followBox.checked; if (follow) { cursor = events.length; scrub.value = cursor; } render(); });
  levelFilter.addEventListener("change", render);
  nodeFilter.addEventListener("input", throttle(render, 150));

  const refreshGraph = throttle(async () => { graph = await api(`/api/v1/runs/${enc(workflowId)}/graph?expand_up_to=0`); scheduleRender(); }, 1000);
  const last = events.length ? events[events.length - 1].seq : 0;
  const source = new EventSource(streamUrl(`/api/v1/runs/${enc(workflowId)}/stream?after=${last}`));
  const onEvent = (message) => {
    const e = JSON.parse(message.data);
    if (events.length && e.seq <= events[events.length - 1].seq) return;
    events.push(e);
    scrub.max = events.length;
    if (follow) { cursor = events.length; scrub.value = cursor; }
    if (e.type === "PLAN_EXTENDED" || e.type === "PLAN_CREATED") refreshGraph();
    scheduleRender();
  };
  for (const type of ["WORKFLOW_STARTED", "CONTEXT_RESOLVED", "PLAN_CREATED", "PLAN_EXTENDED", "NODE_STARTED", "NODE_PROGRESS", "NODE_LOG",
    "NODE_COMPLETED", "NODE_FAILED", "NODE_WAITING", "NODE_SKIPPED", "WORKFLOW_COMPLETED", "WORKFLOW_FAILED"]) {
    source.addEventListener(type, onEvent);
  }
  source.addEventListener("WORKFLOW_COMPLETED", () => source.close());
  source.addEventListener("WORKFLOW_FAILED", () => source.close());
  cleanup.push(() => source.close());

  fill($main, 
    el("h2", {}, workflowId, " ", el("span", { class: "muted" }, `${detail.definition_id} v${detail.version_used ?? "?"} · ${detail.trigger_kind}`)),
    detail.error ? el("div", { class: "card error-box" }, detail.error) : null,
    el("div", { class: "card" }, counters, el("div", { class: "row" }, el("label", {}, "replay "), el("div", { class: "grow" }, scrub), scrubLabel,
      el("label", {}, followBox, " live"))),
    el("div", { class: "row" }, el("div", { class: "grow" }, dag,
      el("h3", {}, "Events ", levelFilter, " ", nodeFilter), log), side));
  render();
}

// ---- inbox ----

async function inboxView() {
  const { human_tasks } = await api("/api/v1/human-tasks?status=waiting");
  const cards = human_tasks.map((t) => {
    const payload = el("textarea", { placeholder: '{"ok": true}' });
    const reason = el("input", { placeholder: "reason" });
    const by = el("input", { placeholder: "your name" });
    const decide = async (action) => {
      try {
        const body = action === "complete" ? { payload: payload.value.trim() ? JSON.parse(payload.value) : null, by: by.value || null } : { reason: reason.value || null, by: by.value || null };
        await api(`/api/v1/human-tasks/${enc(t.id)}/${action}`, { method: "POST", body: JSON.stringify(body) });
        inboxView().catch(showError);
      } catch (e) { showError(e); }
    };
    return el("div", { class: "card", "data-human-task": t.id },
      el("h3", {}, t.title), el("p", { class: "muted" }, `for ${t.assignee || "anyone"} · `, el("a", { href: `#/runs/${enc(t.run_workflow_id)}` }, t.run_workflow_id), ` · ${when(t.created_at)}`),
      pretty(t.form), payload, el("p", {}, by, " ", el("button", { class: "primary", onclick: () => decide("complete") }, "Complete"), " ", reason, " ",
        el("button", { class: "danger", onclick: () => decide("reject") }, "Reject")));
  });
  fill($main, el("h2", {}, "Inbox"), cards.length ? cards : el("p", { class: "muted" }, "Nothing waiting."));
}

// ---- routing ----

async function route() {
  cleanup.forEach((f) => f());
  cleanup = [];
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const tab = parts[0] || "runs";
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.dataset.tab === tab));
  try {
    if (tab === "definitions" && parts[1]) await definitionView(parts[1]);
    else if (tab === "definitions") await definitionsView();
    else if (tab === "runs" && parts[1]) await runView(parts.slice(1).join("/"));
    else if (tab === "inbox") await inboxView();
    else await runsView();
  } catch (e) {
    fill($main);
    showError(e);
  }
}

let globalStream = null;
function connectGlobalStream() {
  const live = document.getElementById("live");
  if (globalStream) globalStream.close();
  if (!apiKey) return;
  const source = new EventSource(streamUrl("/api/v1/stream"));
  globalStream = source;
  source.onopen = () => { live.textContent = "live"; live.className = "on"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "muted"; };
  source.addEventListener("run", (m) => window.dispatchEvent(new CustomEvent("run-change", { detail: JSON.parse(m.data) })));
}

window.addEventListener("hashchange", route);
api("/api/v1/ui-config").then((c) => { config = c; }).catch(() => {}).finally(() => { connectGlobalStream(); route(); });
