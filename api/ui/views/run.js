// One run: its graph (templates in DAG columns, a square per task), counters, the replay
// scrubber, the event log and task details. The page derives every state from the run's
// trace events, which is also what the scrubber re-plays; it follows the run's stream live.
import { api, currentKey, streamUrl } from "../lib/api.js";
import { badge, el, enc, fill, main, pretty, throttle, when } from "../lib/dom.js";
import { onLeave } from "../lib/router.js";

/**
 * What a task square can show, in the order counters and bars list them: a status the run log
 * stores (`statuses`, from /api/v1/ui-config), or one of two states only the trace events
 * tell: waiting (for a person: NODE_WAITING) and retrying (started again after failing).
 */
function taskStates(statuses) {
  const at = statuses.indexOf("running") + 1;
  return [...statuses.slice(0, at), "waiting", "retrying", ...statuses.slice(at)];
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
    if (e.type === "WORKFLOW_CANCELLED") runStatus = "cancelled";
    if (e.type === "WORKFLOW_TERMINATED") runStatus = "terminated";
    if (e.type === "WORKFLOW_TIMED_OUT") runStatus = "timed_out";
    if (e.type === "WORKFLOW_QUEUED") runStatus = "queued";
    if (e.type === "WORKFLOW_ADMITTED") runStatus = "running";
    if (e.type === "WORKFLOW_SKIPPED") runStatus = "skipped";
    if (!id) continue;
    const status = { NODE_STARTED: "running", NODE_WAITING: "waiting", NODE_COMPLETED: "completed", NODE_FAILED: "failed", NODE_CANCELLED: "cancelled" }[e.type];
    const entry = tasks.get(id) || { id, status: "pending", group: id.startsWith("job:") ? "external jobs" : id.slice(run.length + 1).split("/")[0] };
    if (status) entry.status = entry.status === "failed" && status === "running" ? "retrying" : status;
    entry.last = e;
    tasks.set(id, entry);
  }
  return { tasks, skippedTemplates, runStatus };
}

/** Fills the page with run `workflowId`; `config` is what /api/v1/ui-config answered. */
export async function runView(workflowId, config) {
  const states = taskStates(config.statuses);
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
    const totals = Object.fromEntries(states.map((s) => [s, 0]));
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
    fill(counters, badge(state.runStatus), " ", ...states.filter((s) => totals[s]).map((s) => el("span", {}, `${s}: ${totals[s]}`)));
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
      const counts = Object.fromEntries(states.map((s) => [s, list.filter((t) => t.status === s).length]));
      const bar = el("div", { class: "bar" }, states.filter((s) => counts[s]).map((s) =>
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
  const scheduleReports = throttle(() => renderReports(), 200);

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
    const inTemporal = task?.temporal_workflow_id ?? id;
    const link = config.temporal_ui_url ? el("a", { href: `${config.temporal_ui_url}/namespaces/${enc(config.namespace)}/workflows/${enc(inTemporal)}`, target: "_blank" }, task?.execution === "activity" || task?.execution === "local" ? "open its batch in the Temporal Web UI (activity " + id + ")" : "open in the Temporal Web UI") : null;
    fill(side, el("h3", {}, id), link,
      task ? [el("p", {}, badge(task.status), ` attempt ${task.attempt} · ${when(task.started_at)} → ${when(task.finished_at)}`),
        reports,
        el("h4", {}, "params"), pretty(task.params), el("h4", {}, "output"), pretty(task.output),
        task.error ? [el("h4", {}, "error"), el("div", { class: "error-box" }, task.error)] : null]
        : el("p", { class: "muted" }, "not in the first 1,000 tasks of the run detail"));
    renderReports();
  };

  // What the selected task's code reported (NODE_PROGRESS, NODE_LOG, NODE_ARTIFACT), as of the
  // scrubber's position; kept live by the stream.
  const reports = el("div", { class: "reports" });
  const renderReports = () => {
    if (!selected) return;
    const mine = events.slice(0, cursor).filter((e) => e.node_id === selected);
    const progress = mine.filter((e) => e.type === "NODE_PROGRESS").pop();
    const lines = mine.filter((e) => e.type === "NODE_LOG");
    const artifacts = mine.filter((e) => e.type === "NODE_ARTIFACT");
    const bar = progress ? (() => {
      const { current, total, message } = progress.payload;
      const share = total ? Math.min(1, current / total) : null;
      return el("div", { class: "progress", "data-testid": "task-progress", "data-current": current, "data-total": total ?? "" },
        el("div", { class: "progress-track" }, el("div", { class: "progress-fill", style: `width: ${share === null ? 100 : Math.round(share * 100)}%` })),
        el("span", {}, total ? `${current} / ${total}` : `${current}`, message ? ` · ${message}` : ""));
    })() : null;
    const artifactLink = (e) => {
      const p = e.payload;
      // Inline content is served by the API (the key as access_token: a plain link sends no header).
      const href = p.url || `/api/v1/artifacts/${enc(p.artifact_id)}?access_token=${enc(currentKey())}`;
      return el("li", {}, el("a", { href, target: "_blank", rel: "noopener", "data-testid": "task-artifact" }, p.name),
        p.url ? "" : ` (${p.media_type || "data"}, ${p.size} bytes)`);
    };
    fill(reports, bar,
      lines.length ? [el("h4", {}, "log"), el("div", { class: "log task-log", "data-testid": "task-log" },
        lines.slice(-200).map((e) => el("div", { class: e.level }, `${e.ts.slice(11, 23)} ${e.message || ""}`)))] : null,
      artifacts.length ? [el("h4", {}, "artifacts"), el("ul", {}, artifacts.map(artifactLink))] : null);
  };

  scrub.addEventListener("input", () => {
    cursor = Number(scrub.value);
    follow = cursor === events.length;
    followBox.checked = follow;
    render();
    renderReports();
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
    if (e.node_id && e.node_id === selected) scheduleReports();
    scheduleRender();
  };
  for (const type of config.event_types) source.addEventListener(type, onEvent);
  // The run's end closes the stream and shows what can be done next (retry).
  // What the last action answered stays shown when the buttons change.
  const result = el("span", { class: "action-result", "data-testid": "action-result" });
  const actions = el("div", {}, runActions(workflowId, detail, result));
  const ended = async () => {
    source.close();
    detail = await api(`/api/v1/runs/${enc(workflowId)}`);
    fill(actions, runActions(workflowId, detail, result));
  };
  for (const closed of ["WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED", "WORKFLOW_TERMINATED", "WORKFLOW_TIMED_OUT", "WORKFLOW_SKIPPED"]) {
    source.addEventListener(closed, ended);
  }
  onLeave(() => source.close());

  fill(main,
    el("h2", {}, workflowId, " ", el("span", { class: "muted" }, `${detail.definition_id} v${detail.version_used ?? "?"} · ${detail.trigger_kind}`)),
    runLinks(detail),
    actions,
    detail.error ? el("div", { class: "card error-box" }, detail.error) : null,
    el("div", { class: "card" }, counters, el("div", { class: "row" }, el("label", {}, "replay "), el("div", { class: "grow" }, scrub), scrubLabel,
      el("label", {}, followBox, " live"))),
    el("div", { class: "row" }, el("div", { class: "grow" }, dag,
      el("h3", {}, "Events ", levelFilter, " ", nodeFilter), log), side));
  render();
}

/** Waits (at most 15 s) until the run log has a just-started run, which its worker records. */
async function recorded(workflowId) {
  for (const deadline = Date.now() + 15000; Date.now() < deadline;) {
    try {
      return await api(`/api/v1/runs/${enc(workflowId)}`);
    } catch (e) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  return null;
}

const runLink = (id) => el("a", { href: `#/runs/${enc(id)}` }, id);

/** Where the run comes from and where it went: the run it retries, its retries, resets. */
function runLinks(detail) {
  const parts = [];
  if (detail.retry_of) parts.push(["retry of ", runLink(detail.retry_of)]);
  if (detail.retries.length) parts.push(["retried as ", ...detail.retries.flatMap((id, i) => (i ? [", ", runLink(id)] : [runLink(id)]))]);
  if (detail.resets) parts.push([`reset ${detail.resets} time(s) in Temporal`]);
  return parts.length ? el("p", { class: "muted" }, ...parts.flatMap((p, i) => (i ? [" · ", ...p] : p))) : null;
}

/**
 * Cancel (a running run) and retry (a finished one that did not complete), each after a
 * confirmation; the answer, or the API's error, is shown in `result` next to the buttons. A
 * retry opens the new run.
 */
function runActions(workflowId, detail, result) {
  const act = async (question, path, body, after) => {
    if (!window.confirm(question)) return;
    try {
      await after(await api(path, { method: "POST", body: JSON.stringify(body) }));
    } catch (e) {
      fill(result, el("span", { class: "error-box" }, e.message));
    }
  };
  const base = `/api/v1/runs/${enc(workflowId)}`;
  const cancel = (detail.status === "running" || detail.status === "queued")
    ? el("button", { "data-testid": "cancel-run", onclick: () => act(`Cancel run ${workflowId}? Tasks in flight are cancelled.`,
      `${base}/cancel`, { reason: "cancelled from the web UI" }, (a) => fill(result, `cancelling (asked by ${a.by})`)) }, "Cancel run")
    : null;
  const retry = !["running", "queued", "completed"].includes(detail.status)
    ? el("button", { "data-testid": "retry-run", onclick: () => act(`Retry what did not complete in ${workflowId}? Completed tasks are reused.`,
      `${base}/retry`, { tasks: "failed" }, async (a) => {
        fill(result, `started ${a.workflow_id}: ${a.tasks.reused} task(s) reused, ${a.tasks.rerun.length} to run`);
        await recorded(a.workflow_id);
        location.hash = `#/runs/${enc(a.workflow_id)}`;
      }) }, "Retry what failed")
    : null;
  return el("div", { class: "row" }, cancel, retry, result);
}
