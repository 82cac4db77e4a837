// The definitions list: tags, trigger, state, version, last run and next fire of each
// definition, narrowed by a tag (select or a row's tag) and a search text.
import { api } from "../lib/api.js";
import { badge, el, enc, fill, main, when } from "../lib/dom.js";
import { showError } from "../lib/router.js";

// The definitions list's filters (tag, search), kept while the page is open.
const definitionFilter = { tag: "", search: "" };

function filterDefinitions(change) {
  Object.assign(definitionFilter, change);
  definitionsView().catch(showError);
}

/** Fills the page with the definitions list, filtered by `definitionFilter`. */
export async function definitionsView() {
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
  fill(main, el("h2", {}, "Definitions"),
    el("p", { class: "filters" }, tagSelect, " ", search, " ", filtered ? el("span", { class: "muted" }, `${definitions.length} shown`) : null),
    el("table", {}, el("tr", {}, ...["id", "name", "tags", "trigger", "state", "version", "last run", "next fire"].map((h) => el("th", {}, h))), rows));
}
