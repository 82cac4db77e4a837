// What a run's trace events say, as of some event: the run's status and phases, each task's
// state and times, per-template counts. The run page folds the events it has into one model
// (and a new one from scratch when the replay scrubber moves back); a live event is one
// `apply`, so a run of thousands of tasks costs no re-reading per event.

/**
 * The states a task square can show, in the order counters and bars list them: a status the
 * run log stores (`statuses`, from /api/v1/ui-config), or one of two states only the trace
 * events tell: waiting (for a person: NODE_WAITING) and retrying (started again after failing).
 */
export function taskStates(statuses) {
  const at = statuses.indexOf("running") + 1;
  return [...statuses.slice(0, at), "waiting", "retrying", ...statuses.slice(at)];
}

/** The lane external jobs (reported through /external-events) are drawn in. */
export const EXTERNAL = "external jobs";

const RUN_STATUS = {
  WORKFLOW_COMPLETED: "completed", WORKFLOW_FAILED: "failed", WORKFLOW_CANCELLED: "cancelled",
  WORKFLOW_TERMINATED: "terminated", WORKFLOW_TIMED_OUT: "timed_out", WORKFLOW_QUEUED: "queued",
  WORKFLOW_ADMITTED: "running", WORKFLOW_SKIPPED: "skipped", WORKFLOW_RESET: "running",
};
const ENDS = new Set(["WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED", "WORKFLOW_TERMINATED", "WORKFLOW_TIMED_OUT", "WORKFLOW_SKIPPED"]);
const TASK_STATUS = { NODE_STARTED: "running", NODE_WAITING: "waiting", NODE_COMPLETED: "completed", NODE_FAILED: "failed", NODE_CANCELLED: "cancelled" };

export class RunModel {
  /** An empty model of run `workflowId`. */
  constructor(workflowId) {
    this.run = workflowId;
    /** Task id → `{id, group, status, start, end, reused, node, last}` (times in ms). */
    this.tasks = new Map();
    /** Group (template id, or EXTERNAL) → `{tasks: [task], counts: {state: n}}`, in first-seen order. */
    this.groups = new Map();
    /** Template id → why its tasks were skipped (NODE_SKIPPED). */
    this.skippedTemplates = new Map();
    this.status = "running";
    /** `{queued, context, plan, tasks}` → `[from, to?]` in ms. */
    this.phases = {};
    this.start = null;
    this.end = null;
    /** The time of the last event applied (ms). */
    this.now = null;
    this.applied = 0;
  }

  group(id) {
    let g = this.groups.get(id);
    if (!g) this.groups.set(id, (g = { tasks: [], counts: {} }));
    return g;
  }

  /** The template a task id belongs to (`{run}/{template}/{item}`), or EXTERNAL for a job. */
  groupOf(id) {
    return id.startsWith("job:") ? EXTERNAL : id.slice(this.run.length + 1).split("/")[0];
  }

  /** Folds one trace event in (events arrive in seq order). */
  apply(e) {
    const at = Date.parse(e.ts);
    this.applied += 1;
    this.now = at;
    if (this.start === null) this.start = at;
    const phases = this.phases;
    if (e.type === "WORKFLOW_QUEUED") phases.queued = [at];
    if (e.type === "WORKFLOW_ADMITTED" && phases.queued) phases.queued[1] = at;
    if (e.type === "CONTEXT_RESOLVED") phases.context = [phases.queued?.[1] ?? this.start, at];
    if (e.type === "PLAN_CREATED") { phases.plan = [phases.context?.[1] ?? this.start, at]; phases.tasks = [at]; }
    if (RUN_STATUS[e.type]) this.status = RUN_STATUS[e.type];
    if (ENDS.has(e.type)) {
      this.end = at;
      if (phases.tasks) phases.tasks[1] = at;
    }
    if (e.type === "NODE_SKIPPED" && e.payload && e.payload.template_id) this.skippedTemplates.set(e.payload.template_id, e.message);
    const id = e.node_id;
    if (!id) return;
    let task = this.tasks.get(id);
    if (!task) {
      task = { id, group: this.groupOf(id), status: "pending", start: null, end: null, reused: false, node: null, last: null };
      this.tasks.set(id, task);
      const g = this.group(task.group);
      g.tasks.push(task);
      g.counts.pending = (g.counts.pending || 0) + 1;
    }
    task.last = e;
    if (task.group === EXTERNAL && e.payload && e.payload.data && e.payload.data.node) task.node = String(e.payload.data.node);
    const next = TASK_STATUS[e.type];
    if (!next) return;
    if (e.type === "NODE_STARTED") {
      if (task.start === null) task.start = at;
      task.end = null;
    }
    if (e.type === "NODE_COMPLETED" || e.type === "NODE_FAILED" || e.type === "NODE_CANCELLED") {
      task.end = at;
      if (e.payload && e.payload.reused_from) task.reused = true;
    }
    this.setStatus(task, task.status === "failed" && next === "running" ? "retrying" : next);
  }

  setStatus(task, status) {
    const counts = this.group(task.group).counts;
    counts[task.status] -= 1;
    counts[status] = (counts[status] || 0) + 1;
    task.status = status;
  }

  /**
   * Per-state counts of template `group`, with its planned tasks the events have not named
   * yet (`total` from the graph answer) counted pending, or skipped when the template was.
   */
  countsOf(group, total) {
    const counts = { ...(this.groups.get(group)?.counts || {}) };
    const seen = this.groups.get(group)?.tasks.length || 0;
    const missing = Math.max(0, (total || 0) - seen);
    if (missing) {
      const as = this.skippedTemplates.has(group) ? "skipped" : "pending";
      counts[as] = (counts[as] || 0) + missing;
    }
    return counts;
  }
}
