// One run: its graph (templates as nodes with edges, task squares, pan and zoom), a timeline
// of its phases and tasks, counters, the replay scrubber, the event log, the task panel and
// the actions the key's role may take. Every state is derived from the run's trace events
// (lib/run-model.js), which is also what the scrubber re-plays; the page follows the run's
// stream live.
import { NeedsKey, api, currentKey, streamUrl } from "../lib/api.js";
import { badge, duration, el, enc, fill, main, pretty, throttle, when } from "../lib/dom.js";
import { onLeave } from "../lib/router.js";
import { EXTERNAL, RunModel, taskStates } from "../lib/run-model.js";
import { GraphView } from "./run-graph.js";
import { TimelineView } from "./run-timeline.js";

const OPEN = ["running", "queued"];
const ROLES = ["reporter", "viewer", "operator", "admin"];
/** Whether the key's role (`whoami`) may operate runs. */
const operates = (me) => ROLES.indexOf(me.role) >= ROLES.indexOf("operator");

const PAGE = 10000;

/**
 * All of a run's trace events, in pages of 10,000, two pages at a time: seqs are gapless from
 * 1, so the page after a full one starts at the next multiple of the page size.
 */
async function allEvents(workflowId) {
  const page = (after) => api(`/api/v1/runs/${enc(workflowId)}/events?after=${after}&limit=${PAGE}`);
  const events = [];
  for (let after = 0; ;) {
    const [first, second] = await Promise.all([page(after), page(after + PAGE)]);
    events.push(...first.events);
    if (first.next === null) return events;
    events.push(...second.events);
    if (second.next === null) return events;
    after = second.next;
  }
}

/** Fills the page with run `workflowId`; `config` is what /api/v1/ui-config answered. */
export async function runView(workflowId, config) {
  const states = taskStates(config.statuses);
  // Everything at once; a run just started (Run now, a retry) is recorded by its worker a
  // moment later: then the rest is asked again once it is.
  const load = () => Promise.all([api(`/api/v1/runs/${enc(workflowId)}?plan=false`),
    api(`/api/v1/runs/${enc(workflowId)}/graph?expand_up_to=0`), api("/api/v1/whoami"), allEvents(workflowId)]);
  const [firstDetail, first, me, events] = await load().catch(async (e) => {
    if (e instanceof NeedsKey || !(await recorded(workflowId))) throw e;
    return load();
  });
  let graph = first;
  let detail = firstDetail;
  let attempts = new Map(detail.tasks.map((t) => [t.id, t.attempt]));
  let cursor = events.length;
  let follow = true;
  let selected = null;
  let model = new RunModel(workflowId);
  /** The model as of event `cursor`: folded forward, or again from the start when going back. */
  const modelAt = (upTo) => {
    if (model.applied > upTo) model = new RunModel(workflowId);
    for (let i = model.applied; i < upTo; i++) model.apply(events[i]);
    return model;
  };
  const counters = el("div", { class: "counters" });
  const graphView = new GraphView((id) => select(id));
  const timeline = new TimelineView((id) => select(id), (id) => attempts.get(id));
  const side = el("div", { class: "card side" }, el("p", { class: "muted" }, "Click a task for its details."));
  const scrub = el("input", { type: "range", min: 0, max: events.length, value: events.length });
  const scrubLabel = el("span", { class: "muted" });
  const followBox = el("input", { type: "checkbox", checked: true });
  const levelFilter = el("select", {}, ["all", "info", "warn", "error"].map((l) => el("option", { value: l }, l)));
  const nodeFilter = el("input", { placeholder: "filter by node" });
  const log = el("div", { class: "log" });

  const renderTimeline = () => {
    const m = modelAt(cursor);
    const live = follow && m.end === null;
    timeline.render(m, live ? Math.max(Date.now(), m.now ?? 0) : (m.end ?? m.now));
  };
  const scheduleTimeline = throttle(renderTimeline, 1000);
  // The event log: the last 500 lines that pass the filters, as of the scrubber. While the
  // page follows the run, new lines are appended (and the oldest dropped) instead of drawing
  // all 500 again; the scroll to the end waits for the next frame, so no render forces a
  // layout of the page.
  let logged = null;
  const renderLog = () => {
    const level = levelFilter.value;
    const node = nodeFilter.value.trim();
    const passes = (e) => (level === "all" || e.level === level) && (!node || (e.node_id || "").includes(node));
    const line = (e) => el("div", { class: e.level, title: JSON.stringify(e.payload) },
      `${String(e.seq).padStart(5)} ${e.ts.slice(11, 23)} ${e.type.padEnd(18)} ${e.node_id || "-"} ${e.message || ""}`);
    if (logged && logged.level === level && logged.node === node && logged.upTo <= cursor && cursor - logged.upTo <= 500) {
      for (let i = logged.upTo; i < cursor; i++) if (passes(events[i])) log.append(line(events[i]));
      for (let extra = log.childElementCount - 500; extra > 0; extra--) log.firstElementChild.remove();
    } else {
      const visible = [];
      for (let i = cursor - 1; i >= 0 && visible.length < 500; i--) if (passes(events[i])) visible.push(events[i]);
      fill(log, visible.reverse().map(line));
    }
    logged = { level, node, upTo: cursor };
    if (follow) requestAnimationFrame(() => { log.scrollTop = log.scrollHeight; });
  };
  const render = () => {
    const m = modelAt(cursor);
    const totals = Object.fromEntries(states.map((s) => [s, 0]));
    for (const g of graph.groups) for (const [s, n] of Object.entries(m.countsOf(g.id, g.total))) totals[s] = (totals[s] || 0) + n;
    for (const [s, n] of Object.entries(m.groups.get(EXTERNAL)?.counts || {})) totals[s] = (totals[s] || 0) + n;
    const runEnd = m.end ?? (follow && OPEN.includes(m.status) ? null : m.now);
    fill(counters, badge(m.status), " ", ...states.filter((s) => totals[s]).map((s) => el("span", {}, `${s}: ${totals[s]}`)),
      m.start !== null ? el("span", { class: "muted", "data-testid": "run-duration" }, runEnd === null ? `running for ${duration(Date.now() - m.start)}` : duration(runEnd - m.start)) : null);
    graphView.render(graph, m, states, selected);
    scrubLabel.textContent = `event ${cursor} of ${events.length}`;
    renderLog();
    scheduleTimeline();
  };
  graphView.onExpand = render;
  const scheduleRender = throttle(render, 200);
  const scheduleReports = throttle(() => renderReports(), 200);

  const select = async (id) => {
    selected = id;
    render();
    if (id.startsWith("job:")) {
      fill(side, el("h3", {}, id), el("p", {}, "external job"), reports, pretty(events.filter((e) => e.node_id === id).map((e) => e.payload)));
      renderReports();
      return;
    }
    let task = detail.tasks.find((t) => t.id === id);
    if (!task || OPEN.includes(task.status) || task.status === "pending" || task.status === "waiting") {
      detail = await api(`/api/v1/runs/${enc(workflowId)}?plan=false`);
      attempts = new Map(detail.tasks.map((t) => [t.id, t.attempt]));
      task = detail.tasks.find((t) => t.id === id);
    }
    if (selected !== id) return;
    const inTemporal = task?.temporal_workflow_id ?? id;
    const link = config.temporal_ui_url ? el("a", { href: `${config.temporal_ui_url}/namespaces/${enc(config.namespace)}/workflows/${enc(inTemporal)}`, target: "_blank" }, task?.execution === "activity" || task?.execution === "local" ? "open its batch in the Temporal Web UI (activity " + id + ")" : "open in the Temporal Web UI") : null;
    const took = task && task.started_at ? duration((task.finished_at ? Date.parse(task.finished_at) : Date.now()) - Date.parse(task.started_at)) : "";
    fill(side, el("h3", {}, id), link,
      task ? [el("p", {}, badge(task.status), ` attempt ${task.attempt} · ${when(task.started_at)} → ${when(task.finished_at)}`, took ? ` · ${took}` : ""),
        el("div", { class: "row" }, taskActions(workflowId, detail, task, me)),
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
    renderTimeline();
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
  // Running bars and the run's duration grow with the clock while nothing else happens.
  const clock = setInterval(() => { if (follow && model.end === null && OPEN.includes(model.status)) scheduleRender(); }, 1000);
  // The run's end closes the stream and shows what can be done next (retry).
  // What the last action answered stays shown when the buttons change.
  const result = el("span", { class: "action-result", "data-testid": "action-result" });
  const actions = el("div", {}, runActions(workflowId, detail, me, result));
  const ended = async () => {
    source.close();
    detail = await api(`/api/v1/runs/${enc(workflowId)}?plan=false`);
    attempts = new Map(detail.tasks.map((t) => [t.id, t.attempt]));
    fill(actions, runActions(workflowId, detail, me, result));
    if (selected) select(selected);
    scheduleRender();
  };
  for (const closed of ["WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED", "WORKFLOW_TERMINATED", "WORKFLOW_TIMED_OUT", "WORKFLOW_SKIPPED"]) {
    source.addEventListener(closed, ended);
  }
  // Retention deleted the run while the page showed it: what is shown stays, nothing more comes.
  source.addEventListener("run_pruned", () => {
    source.close();
    fill(result, el("span", { class: "error-box" }, "this run has been pruned from the run log (retention)"));
  });
  onLeave(() => { source.close(); clearInterval(clock); });

  fill(main,
    el("h2", {}, workflowId, " ", el("span", { class: "muted" }, `${detail.definition_id} v${detail.version_used ?? "?"} · ${detail.trigger_kind}`)),
    runLinks(detail),
    actions,
    detail.error ? el("div", { class: "card error-box" }, detail.error) : null,
    el("div", { class: "card" }, counters, el("div", { class: "row" }, el("label", {}, "replay "), el("div", { class: "grow" }, scrub), scrubLabel,
      el("label", {}, followBox, " live"))),
    el("div", { class: "row" }, el("div", { class: "grow" }, graphView.root, timeline.root,
      el("h3", {}, "Events ", levelFilter, " ", nodeFilter), log), side));
  render();
  renderTimeline();
  window.dispatchEvent(new CustomEvent("run-page-ready", { detail: { events: events.length } }));
}

/**
 * Waits (at most 15 s) until the run log has a just-started run, which its worker records;
 * answers it, or null when it is still unknown (other errors, like a missing key, at once).
 */
async function recorded(workflowId) {
  for (const deadline = Date.now() + 15000; Date.now() < deadline;) {
    try {
      return await api(`/api/v1/runs/${enc(workflowId)}?plan=false`);
    } catch (e) {
      if (e instanceof NeedsKey) throw e;
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

/** Asks `question`, posts `body` to `path` and hands the answer to `after`; errors go to `result`. */
async function act(question, path, body, result, after) {
  if (!window.confirm(question)) return;
  try {
    await after(await api(path, { method: "POST", body: JSON.stringify(body) }));
  } catch (e) {
    fill(result, el("span", { class: "error-box" }, e.message));
  }
}

/** Says what a retry will do, waits until its run is recorded, and opens it. */
async function openRetry(answer, result) {
  fill(result, `started ${answer.workflow_id}: ${answer.tasks.reused} task(s) reused, ${answer.tasks.rerun.length} to run`);
  await recorded(answer.workflow_id);
  location.hash = `#/runs/${enc(answer.workflow_id)}`;
}

/**
 * Cancel (a running run) and retry (a finished one that did not complete), each after a
 * confirmation, for keys that operate runs; the answer, or the API's error, is shown in
 * `result` next to the buttons. A retry opens the new run.
 */
function runActions(workflowId, detail, me, result) {
  if (!operates(me)) return el("p", { class: "muted" }, `read-only: the key ${me.name ?? ""} is a ${me.role}`);
  const base = `/api/v1/runs/${enc(workflowId)}`;
  const cancel = OPEN.includes(detail.status)
    ? el("button", { class: "danger", "data-testid": "cancel-run", onclick: () => act(`Cancel run ${workflowId}? Tasks in flight are cancelled.`,
      `${base}/cancel`, { reason: "cancelled from the web UI" }, result, (a) => fill(result, `cancelling (asked by ${a.by})`)) }, "⊘ Cancel run")
    : null;
  const retry = ![...OPEN, "completed"].includes(detail.status)
    ? el("button", { "data-testid": "retry-run", onclick: () => act(`Retry what did not complete in ${workflowId}? Completed tasks are reused.`,
      `${base}/retry`, { tasks: "failed" }, result, (a) => openRetry(a, result)) }, "↻ Retry what failed")
    : null;
  return el("div", { class: "row" }, cancel, retry, result);
}

/**
 * The selected task's actions: retry it alone (a new run that reuses every other completed
 * task) once the run has ended, and complete or reject it when it waits for a person.
 */
function taskActions(workflowId, detail, task, me) {
  if (!operates(me)) return null;
  const result = el("span", { class: "action-result", "data-testid": "task-action-result" });
  const retry = !OPEN.includes(detail.status) && ["failed", "cancelled", "skipped"].includes(task.status)
    ? el("button", { "data-testid": "retry-task", onclick: () => act(`Run ${task.id} again in a new run? The run's other completed tasks are reused.`,
      `/api/v1/runs/${enc(workflowId)}/retry`, { tasks: [task.id] }, result, (a) => openRetry(a, result)) }, "↻ Retry this task")
    : null;
  const human = el("span");
  if (task.status === "waiting" || task.kind === "human") {
    api("/api/v1/human-tasks?status=waiting&limit=500").then(({ human_tasks }) => {
      const waiting = human_tasks.find((h) => h.task_id === task.id);
      if (!waiting) return;
      const answer = el("textarea", { placeholder: '{"approved": true}', "data-testid": "human-answer" });
      const decide = (action) => act(`${action === "complete" ? "Complete" : "Reject"} ${waiting.title}?`,
        `/api/v1/human-tasks/${enc(waiting.id)}/${action}`,
        action === "complete" ? { payload: answer.value.trim() ? JSON.parse(answer.value) : null } : { reason: answer.value.trim() || "rejected from the web UI" },
        result, (a) => fill(result, `${a.status}`));
      fill(human, el("div", {}, el("p", {}, `waiting for ${waiting.assignee || "anyone"}: ${waiting.title}`), answer,
        el("button", { class: "primary", "data-testid": "complete-human", onclick: () => decide("complete") }, "✓ Complete"), " ",
        el("button", { class: "danger", "data-testid": "reject-human", onclick: () => decide("reject") }, "✗ Reject")));
    }).catch((e) => fill(result, el("span", { class: "error-box" }, e.message)));
  }
  return [retry, human, result];
}
