// The hash router: `#/<tab>/<rest>[?query]` picks a view, which fills the main area. It also owns
// what the main area shows when a view fails (the error, or the API key prompt when the API
// answers 401) and the clean-up of the view being left (its streams and listeners).
import { NeedsKey, currentKey, setKey } from "./api.js";
import { el, fill, main } from "./dom.js";

let table = null;
let leaving = [];

/** Runs `fn` when the page moves to another view (to close a stream, drop a listener). */
export function onLeave(fn) {
  leaving.push(fn);
}

/** Asks for an API key in the main area; using one fires `api-key-change` (see api.js). */
export function askForKey(message) {
  const input = el("input", { type: "password", placeholder: "tfk_…", size: 60, value: currentKey() });
  const save = () => setKey(input.value.trim());
  fill(main, el("div", { class: "card" }, el("h3", {}, "API key"), el("p", { class: "muted" }, message,
    " — `taskfactory dev` prints an admin key; `taskfactory keys create` makes others."), input, " ", el("button", { class: "primary", onclick: save }, "Use key")));
}

/** Shows an error above the view, or the key prompt when the error is a missing key. */
export function showError(error) {
  if (error instanceof NeedsKey) return askForKey(currentKey() ? "This key is unknown, revoked or expired." : "Enter an API key.");
  main.prepend(el("div", { class: "card error-box" }, String(error.message || error)));
}

/** Shows the view the hash names (nothing before `startRouter`). */
export async function route() {
  if (!table) return;
  leaving.forEach((f) => f());
  leaving = [];
  // A `?query` after the path (`#/runs?status=failed`) is the view's to read, not a path part.
  const parts = location.hash.replace(/^#\/?/, "").split("?")[0].split("/").map(decodeURIComponent);
  const tab = parts[0] || table.fallback;
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.dataset.tab === tab));
  try {
    await (table.views[tab] ? table.views[tab](parts.slice(1)) : table.views[table.fallback]([]));
  } catch (e) {
    fill(main);
    showError(e);
  }
}

/**
 * Starts routing. `views` maps a tab to a function of the decoded path parts after it that
 * fills the page; an unknown tab shows the `fallback` tab's view with no path (its list).
 */
export function startRouter(views, fallback) {
  table = { views, fallback };
  window.addEventListener("hashchange", route);
  return route();
}
