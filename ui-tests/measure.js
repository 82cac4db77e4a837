// Measures the run page of a 10,000-task run in headless Chromium, and saves the wiki's
// screenshots. Not a test: it prints figures. Against a running system (`taskfactory dev`):
//   TF_API_KEY=<the admin key it printed> node ui-tests/measure.js http://127.0.0.1:8080 [tasks] [shots-dir]
// It applies a definition fanning out `tasks` noop tasks (default 10,000), starts a run, opens
// its page at once and follows it live to the end, then reloads the finished page three times.
// With `TF_MEASURE_RUN=<workflow id>` it only loads that (finished) run's page three times.
//   load:  from navigation start until the page has drawn the run (the `run-page-ready` event)
//   lag:   how late a 20 ms timer fires while the page follows the run live (event-loop lag)
"use strict";
const { chromium } = require("playwright-core");

const [base, tasksArg, shots] = process.argv.slice(2);
const tasks = Number(tasksArg || 10000);
const key = process.env.TF_API_KEY || "";
if (!base || !key) {
  console.error("usage: TF_API_KEY=<key> node ui-tests/measure.js <api-url> [tasks] [screenshots-dir]");
  process.exit(2);
}

async function call(method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: body && JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null;
};
const median = (values) => percentile(values, 50);
let loaded = null;

/** Opens the run page; answers ms from navigation start until the page drew the run (and
 * `loaded`: how many events it had read by then). */
async function load(page, workflowId) {
  await page.goto("about:blank");
  await page.goto(`${base}/#/runs/${encodeURIComponent(workflowId)}`);
  const ms = await page.evaluate(() => new Promise((resolve, reject) => {
    if (window.__ready) return resolve(window.__ready);
    window.addEventListener("run-page-ready", () => resolve(performance.now()));
    setTimeout(() => reject(new Error(`the run page did not load within 60 s: ${document.querySelector("main").textContent.slice(0, 300)}`)), 60000);
  }));
  loaded = await page.evaluate(() => window.__readyEvents);
  return ms;
}

/** `TF_MEASURE_RUN`: three loads of an existing run's page, nothing started. */
async function loadsOnly(workflowId) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.addInitScript((k) => {
    localStorage.setItem("tf_api_key", k);
    window.addEventListener("run-page-ready", (e) => { window.__ready = performance.now(); window.__readyEvents = e.detail.events; });
  }, key);
  const loads = [];
  for (let i = 0; i < 3; i++) loads.push(Math.round(await load(page, workflowId)));
  await browser.close();
  console.log(JSON.stringify({ workflow_id: workflowId, events_read_at_load: loaded, load_ms: loads, load_median_ms: median(loads), goal_ms: 1500 }, null, 2));
}

(async () => {
  if (process.env.TF_MEASURE_RUN) return loadsOnly(process.env.TF_MEASURE_RUN);
  const id = `ui-measure-${Date.now()}`;
  await call("PUT", `/api/v1/definitions/${id}`, {
    id, name: `UI measure: ${tasks} tasks`, trigger: { kind: "manual" },
    context: [{ name: "items", kind: "static", value: [...Array(tasks).keys()] }],
    tasks: [{ id: "prepare", kind: "noop" },
      { id: "each", kind: "noop", for_each: "items", key: "{{ item }}", depends_on: ["prepare"] },
      { id: "report", kind: "noop", depends_on: ["each"] }],
  });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.addInitScript((k) => {
    localStorage.setItem("tf_api_key", k);
    window.addEventListener("run-page-ready", (e) => { window.__ready = performance.now(); window.__readyEvents = e.detail.events; });
    // Event-loop lag: how late each 20 ms timer fires.
    window.__lag = [];
    let expected = performance.now() + 20;
    setInterval(() => { const now = performance.now(); window.__lag.push(Math.max(0, now - expected)); expected = now + 20; }, 20);
  }, key);
  const { workflow_id: workflowId } = await call("POST", `/api/v1/definitions/${id}/runs`, {});
  const liveLoad = await load(page, workflowId);
  await page.evaluate(() => { window.__lag = []; });
  const began = Date.now();
  let shot = false;
  for (;;) {
    const done = await page.$(".counters .badge.completed, .counters .badge.failed");
    if (done) break;
    if (!shot && shots && Date.now() - began > 8000) {
      await page.screenshot({ path: `${shots}/run-live-10000.png` });
      shot = true;
    }
    if (Date.now() - began > 900000) throw new Error("the run did not end within 15 minutes");
    await page.waitForTimeout(500);
  }
  const live = await page.evaluate(() => window.__lag);
  const liveSeconds = (Date.now() - began) / 1000;
  const events = await page.$eval(".row .muted", (n) => n.textContent);
  const loads = [];
  for (let i = 0; i < 3; i++) loads.push(await load(page, workflowId));
  const loadedEvents = loaded;
  await page.evaluate(() => { window.__lag = []; });
  // Scrub to the middle and back, as a person replaying the run would.
  const scrubbed = await page.evaluate(() => {
    const r = document.querySelector("input[type=range]");
    const began = performance.now();
    r.value = String(Math.floor(Number(r.max) / 2));
    r.dispatchEvent(new Event("input"));
    return performance.now() - began;
  });
  if (shots) {
    await page.screenshot({ path: `${shots}/run-replay-10000.png` });
    await load(page, workflowId);
    await page.screenshot({ path: `${shots}/run-detail.png` });
    await page.goto(`${base}/#/runs`);
    await page.waitForSelector("main table tr td");
    await page.screenshot({ path: `${shots}/runs.png` });
  }
  await browser.close();
  const round = (v) => (v === null ? null : Math.round(v * 10) / 10);
  console.log(JSON.stringify({
    tasks, workflow_id: workflowId, events,
    live: { seconds: round(liveSeconds), load_ms: round(liveLoad), lag_samples: live.length, lag_p50_ms: round(percentile(live, 50)), lag_p99_ms: round(percentile(live, 99)), lag_max_ms: round(Math.max(...live)) },
    finished: { events_read_at_load: loadedEvents, load_ms: loads.map(round), load_median_ms: round(median(loads)), scrub_to_middle_ms: round(scrubbed) },
    goal: { load_ms: 1500, lag_p99_ms: 50 },
  }, null, 2));
})().catch((e) => {
  console.error(String((e && e.stack) || e));
  process.exit(1);
});
