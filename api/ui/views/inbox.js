// The inbox: waiting human tasks with their form, completed (with a JSON answer) or
// rejected (with a reason).
import { api } from "../lib/api.js";
import { el, enc, fill, main, pretty, when } from "../lib/dom.js";
import { showError } from "../lib/router.js";

/** Fills the page with the waiting human tasks. */
export async function inboxView() {
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
  fill(main, el("h2", {}, "Inbox"), cards.length ? cards : el("p", { class: "muted" }, "Nothing waiting."));
}
