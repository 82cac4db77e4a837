// The runs list: filters kept in the hash query (`#/runs?status=failed&trigger=event`, so a
// filtered list can be shared and reloaded), cursor paging (Older/Newer), a duration per run
// (live for open runs), refreshed when the global stream announces a run-level change.
import { NeedsKey, api } from "../lib/api.js";
import { durationMs, isOpen } from "../lib/chart.js";
import { badge, duration, el, enc, fill, main, throttle, when } from "../lib/dom.js";
import { onLeave, showError } from "../lib/router.js";

const STATUSES = ["queued", "running", "completed", "skipped", "failed", "cancelled", "terminated", "timed_out"];
const TRIGGERS = ["schedule", "event", "manual"];
/** The hash query's parameters, in the order they are written back. */
const FILTERS = ["definition_id", "trigger", "status", "since", "until", "limit"];

/** The filters of the hash query (`#/runs?…`). */
function filtersOfHash() {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  return Object.fromEntries(FILTERS.filter((k) => query.get(k)).map((k) => [k, query.get(k)]));
}

/** `filters` as a query string (no `?`), empty values left out. */
const queryOf = (filters) => new URLSearchParams(FILTERS.filter((k) => filters[k]).map((k) => [k, filters[k]])).toString();

/** An RFC 3339 instant as a `datetime-local` value in this browser's time zone, "" when unreadable. */
function localInput(instant) {
  const t = new Date(instant);
  if (!instant || Number.isNaN(t.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())}T${p(t.getHours())}:${p(t.getMinutes())}`;
}

/** A `datetime-local` value (local time) as RFC 3339 UTC, "" when empty. */
const utcOfInput = (value) => (value ? new Date(value).toISOString() : "");

/** Fills the page with a page of runs and keeps it fresh while it is shown. */
export async function runsView() {
  const shown = location.hash;
  const filters = filtersOfHash();
  // Changing a filter rewrites the hash; the router then draws the page again from it.
  const apply = (change) => {
    const query = queryOf({ ...filters, ...change });
    location.hash = query ? `#/runs?${query}` : "#/runs";
  };
  const definition = el("input", { type: "search", placeholder: "definition id", value: filters.definition_id || "", "data-testid": "runs-filter-definition",
    onchange: (e) => apply({ definition_id: e.target.value.trim() }) });
  const select = (testid, label, options, key) => {
    const node = el("select", { "data-testid": testid, "aria-label": label, onchange: (e) => apply({ [key]: e.target.value }) },
      el("option", { value: "" }, `any ${label}`), options.map((o) => el("option", { value: o }, o.replace("_", " "))),
      // A value typed into the hash that the list does not know still shows (the API says why it is refused).
      filters[key] && !options.includes(filters[key]) ? el("option", { value: filters[key] }, `${filters[key]} (unknown)`) : "");
    node.value = filters[key] || "";
    return node;
  };
  const time = (testid, key) => el("input", { type: "datetime-local", value: localInput(filters[key]), "data-testid": testid,
    onchange: (e) => apply({ [key]: utcOfInput(e.target.value) }) });
  const controls = el("div", { class: "runs-filters" },
    el("label", {}, "definition ", definition),
    el("label", {}, "trigger ", select("runs-filter-trigger", "trigger", TRIGGERS, "trigger")),
    el("label", {}, "status ", select("runs-filter-status", "status", STATUSES, "status")),
    el("label", {}, "since ", time("runs-filter-since", "since")),
    el("label", {}, "until ", time("runs-filter-until", "until")),
    queryOf(filters) ? el("button", { onclick: () => (location.hash = "#/runs") }, "Clear") : "");

  const table = el("table", { "data-testid": "runs-table", class: "runs" });
  const errorOut = el("div", { "data-testid": "runs-error" });
  const pageLabel = el("span", { class: "muted" });
  // Paging: the cursor of the page shown (null: the newest) and those of the pages before it.
  let cursor = null;
  let next = null;
  const before = [];
  const newer = el("button", { "data-testid": "runs-newer", onclick: () => { cursor = before.pop() ?? null; load().catch(showError); } }, "← Newer");
  const older = el("button", { "data-testid": "runs-older", onclick: () => { before.push(cursor); cursor = next; load().catch(showError); } }, "Older →");

  const durationCell = (r) => el("td", { "data-testid": "run-duration", "data-ms": durationMs(r), "data-open": isOpen(r),
    "data-fired-at": r.fired_at }, isOpen(r) ? `${r.status === "queued" ? "queued" : "running"} for ${duration(durationMs(r))}` : duration(durationMs(r)));
  const row = (r) => el("tr", { class: "link", "data-workflow-id": r.workflow_id, "data-status": r.status, onclick: () => (location.hash = `#/runs/${enc(r.workflow_id)}`) },
    el("td", {}, el("a", { href: `#/runs/${enc(r.workflow_id)}`, onclick: (e) => e.stopPropagation() }, r.workflow_id)),
    el("td", {}, r.definition_id), el("td", {}, r.trigger_kind), el("td", {}, badge(r.status)),
    el("td", {}, r.tasks_planned), el("td", {}, r.tasks_completed), el("td", {}, r.tasks_failed),
    el("td", { title: r.fired_at }, when(r.fired_at)), durationCell(r));
  const header = () => el("tr", {}, ...["run", "definition", "trigger", "status", "tasks", "done", "failed", "fired", "duration"].map((h) => el("th", {}, h)));

  // What the table shows, for the buttons and for tests: the page, its cursor and filters.
  const showPaging = () => {
    newer.disabled = before.length === 0;
    older.disabled = !next;
    fill(pageLabel, `page ${before.length + 1}`);
    table.dataset.cursor = cursor || "";
    table.dataset.query = queryOf(filters);
    table.removeAttribute("aria-busy");
  };
  // Only the latest load draws: a reload the stream asked for must not overwrite the page a
  // click on Older/Newer asked for after it.
  let loads = 0;
  const load = async () => {
    const mine = ++loads;
    table.setAttribute("aria-busy", "true");
    const query = queryOf({ ...filters, limit: filters.limit || "50" });
    try {
      const page = await api(`/api/v1/runs?${query}${cursor ? `&cursor=${enc(cursor)}` : ""}`);
      if (mine !== loads) return;
      next = page.next;
      fill(errorOut);
      fill(table, header(), page.runs.map(row), page.runs.length ? "" : el("tr", {}, el("td", { colspan: 9, class: "muted" }, "no runs")));
    } catch (e) {
      if (e instanceof NeedsKey) throw e;
      if (mine !== loads) return;
      // A bad filter (422) names the parameter: show it above an empty table, filters still there.
      next = null;
      fill(errorOut, el("div", { class: "card error-box" }, String(e.message)));
      fill(table, header());
    } finally {
      if (mine === loads) showPaging();
    }
  };
  await load();
  // The hash changed while the first page loaded: the view of the new hash draws the page.
  if (location.hash !== shown) return;

  const refresh = throttle(() => load().catch(showError), 500);
  window.addEventListener("run-change", refresh);
  // Open runs' durations tick every second between reloads.
  const ticker = setInterval(() => {
    const now = Date.now();
    table.querySelectorAll("td[data-testid=run-duration][data-open]").forEach((td) => {
      const ms = Math.max(0, now - Date.parse(td.dataset.firedAt));
      td.dataset.ms = ms;
      td.textContent = td.textContent.replace(/ for .*/, ` for ${duration(ms)}`);
    });
  }, 1000);
  onLeave(() => { window.removeEventListener("run-change", refresh); clearInterval(ticker); });
  fill(main, el("h2", {}, "Runs ", el("span", { class: "muted" }, "(live)")), controls, errorOut, table,
    el("p", { class: "runs-pager" }, newer, " ", pageLabel, " ", older));
}
