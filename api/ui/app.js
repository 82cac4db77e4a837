// taskfactory web UI, the entry module: reads the UI's settings, follows the global run stream
// (the header's live indicator and `run-change` events for the views) and gives the router
// its views. Plain ES modules, no build step; every view reads the same HTTP API as the CLI.
//   lib/api.js     the API client and the API key     lib/router.js  hash routes, errors, key prompt
//   lib/dom.js     element helpers and formatting     views/*.js     one module per page
import { api, currentKey, streamUrl } from "./lib/api.js";
import { fill, main } from "./lib/dom.js";
import { askForKey, route, showError, startRouter } from "./lib/router.js";
import { definitionView } from "./views/definition.js";
import { definitionsView } from "./views/definitions.js";
import { inboxView } from "./views/inbox.js";
import { runView } from "./views/run.js";
import { runsView } from "./views/runs.js";

let globalStream = null;
function connectGlobalStream() {
  const live = document.getElementById("live");
  if (globalStream) globalStream.close();
  if (!currentKey()) return;
  const source = new EventSource(streamUrl("/api/v1/stream"));
  globalStream = source;
  source.onopen = () => { live.textContent = "live"; live.className = "on"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "muted"; };
  source.addEventListener("run", (m) => window.dispatchEvent(new CustomEvent("run-change", { detail: JSON.parse(m.data) })));
}

document.getElementById("change-key").addEventListener("click", (e) => { e.preventDefault(); askForKey("Change the API key."); });
window.addEventListener("api-key-change", () => { connectGlobalStream(); route(); });

async function boot() {
  // The settings name the event types and statuses the run page shows: without them it cannot work.
  let config;
  try {
    config = await api("/api/v1/ui-config");
  } catch (e) {
    fill(main);
    showError(new Error(`The UI's settings (/api/v1/ui-config) could not be loaded: ${e.message || e}`));
    return;
  }
  connectGlobalStream();
  await startRouter({
    definitions: ([id]) => (id ? definitionView(id) : definitionsView()),
    runs: (rest) => (rest[0] ? runView(rest.join("/"), config) : runsView()),
    inbox: () => inboxView(),
  }, "runs");
}

boot();
