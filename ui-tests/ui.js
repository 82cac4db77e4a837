// Browser scenarios for the taskfactory UI, run by `worker/tests/e2e/ui.rs`.
//   node ui.js <scenario> <api-url> <arg>
// Prints one JSON line of observations and exits 0, or prints the failure and exits 1. The
// Rust test makes the assertions; this script only drives Chromium and reports what it saw.
"use strict";
const { chromium } = require("playwright-core");

const [scenario, base, arg] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

async function counters(page) {
  return page.$eval(".counters", (n) => n.textContent);
}

const scenarios = {
  // Open a run page while the run waits for a person; report what it shows before and after
  // the API completes the human task (done by the Rust test when told so).
  async live(page) {
    await page.goto(`${base}/#/runs/${encodeURIComponent(arg)}`);
    await page.waitForSelector(".task.waiting", { timeout: 30000 });
    const before = await counters(page);
    console.log(JSON.stringify({ phase: "waiting", counters: before }));
    // The Rust test completes the human task now; the page must turn green by itself.
    await page.waitForFunction(() => document.querySelector(".counters .badge.completed"), null, { timeout: 60000 });
    const after = await counters(page);
    const events = await page.$$eval(".log div", (rows) => rows.length);
    return { before, after, events, reloaded: false };
  },
  // Drag the replay scrubber back to an early event and report the graph at that point.
  async replay(page) {
    await page.goto(`${base}/#/runs/${encodeURIComponent(arg)}`);
    await page.waitForSelector(".counters .badge.completed", { timeout: 30000 });
    const end = await counters(page);
    await page.$eval("input[type=range]", (r) => { r.value = "3"; r.dispatchEvent(new Event("input")); });
    const early = await counters(page);
    const label = await page.textContent(".row .muted");
    const logRows = await page.$$eval(".log div", (rows) => rows.length);
    const completedSquares = await page.$$eval(".task.completed", (n) => n.length);
    return { end, early, label, logRows, completedSquares };
  },
  // Cancel a running run from its page, then retry it from the page once it has ended;
  // report what the page said and where the retry led.
  async actions(page) {
    page.on("dialog", (d) => d.accept());
    await page.goto(`${base}/#/runs/${encodeURIComponent(arg)}`);
    // Clicks go through locators: they find the element again if a live update redrew it.
    await page.locator("[data-testid=cancel-run]").first().click({ timeout: 30000 });
    await page.waitForFunction(() => document.querySelector("[data-testid=action-result]").textContent.includes("cancelling"), null, { timeout: 30000 });
    const cancelled = await page.textContent("[data-testid=action-result]");
    // The page follows the run: once it has ended cancelled, it offers the retry.
    await page.locator("[data-testid=retry-run]").first().click({ timeout: 60000 });
    await page.waitForFunction((id) => decodeURIComponent(location.hash).includes(`${id}:retry:`), arg, { timeout: 30000 });
    await page.waitForSelector(".counters", { timeout: 30000 });
    return { cancelled, hash: decodeURIComponent(await page.evaluate(() => location.hash)), links: await page.textContent("main h2 + p") };
  },
  // A finished run's graph and timeline: its edges, where its template nodes sit, its
  // timeline's bars and phases; then the same after dragging the scrubber back to the plan.
  async graph(page) {
    await page.goto(`${base}/#/runs/${encodeURIComponent(arg)}`);
    await page.waitForSelector(".counters .badge.completed", { timeout: 30000 });
    await page.waitForSelector("[data-testid=timeline-bar]", { timeout: 30000 });
    const seen = () => page.evaluate(() => ({
      edges: [...document.querySelectorAll("[data-testid=edge]")].map((e) => ({ from: e.dataset.from, to: e.dataset.to, d: e.getAttribute("d") })),
      nodes: [...document.querySelectorAll("[data-testid=graph-node]")].map((n) => ({ group: n.dataset.group, left: parseFloat(n.style.left), top: parseFloat(n.style.top),
        counts: Object.fromEntries([...n.querySelectorAll("[data-state]")].map((c) => [c.dataset.state, Number(c.dataset.count)])) })),
      bars: [...document.querySelectorAll("[data-testid=timeline-bar]")].map((b) => ({ task: b.dataset.task, status: b.dataset.status, ms: Number(b.dataset.ms), x: Number(b.getAttribute("x")) })),
      phases: [...document.querySelectorAll("[data-testid=timeline-phase]")].map((p) => p.dataset.phase),
    }));
    const end = await seen();
    // Zoom out once with the wheel: the canvas scales, nothing is drawn again.
    const box = await page.$eval("[data-testid=run-graph]", (v) => { const r = v.getBoundingClientRect(); return { x: r.x + 20, y: r.y + 20 }; });
    await page.mouse.move(box.x, box.y);
    await page.mouse.wheel(0, 200);
    const transform = await page.$eval(".graph-canvas", (c) => c.style.transform);
    // Event 3 is PLAN_CREATED: no task has started, so no bar is drawn yet.
    await page.$eval("input[type=range]", (r) => { r.value = "3"; r.dispatchEvent(new Event("input")); });
    const early = await seen();
    return { end, early, transform };
  },
  // Which actions a running run's page offers the key in use (and what it says instead).
  async roles(page) {
    await page.goto(`${base}/#/runs/${encodeURIComponent(arg)}`);
    await page.waitForSelector(".counters .badge", { timeout: 30000 });
    const buttons = await page.$$eval("main [data-testid$=-run]", (b) => b.map((x) => x.dataset.testid));
    const note = await page.$eval("main h2", (h) => (h.parentElement.textContent || ""));
    return { buttons, note };
  },
  // A failed run: select its failed task `arg` ("<run>|<task id>") and retry it alone from
  // the task panel; report what the panel said and where the page went.
  async retrytask(page) {
    const [run, task] = arg.split("|");
    page.on("dialog", (d) => d.accept());
    await page.goto(`${base}/#/runs/${encodeURIComponent(run)}`);
    await page.locator(`.task[title="${task}: failed"]`).first().click({ timeout: 30000 });
    await page.locator("[data-testid=retry-task]").first().click({ timeout: 30000 });
    await page.waitForFunction((id) => decodeURIComponent(location.hash).includes(`${id}:retry:`), run, { timeout: 30000 });
    await page.waitForSelector(".counters", { timeout: 30000 });
    return { hash: decodeURIComponent(await page.evaluate(() => location.hash)), links: await page.textContent("main h2 + p") };
  },
  // Open a run page on the task `arg` ("<run>|<task id>"), report its progress bar as the
  // Rust test reports progress 1 and then 2 (it waits for each "progress" line), then its log
  // lines and artifact links.
  async progress(page) {
    const [run, task] = arg.split("|");
    await page.goto(`${base}/#/runs/${encodeURIComponent(run)}`);
    await page.locator(`.task[title^="${task}:"]`).first().click({ timeout: 30000 });
    const seen = [];
    for (const current of ["1", "2"]) {
      const bar = await page.waitForSelector(`[data-testid=task-progress][data-current="${current}"]`, { timeout: 30000 });
      seen.push(await bar.textContent());
      console.log(JSON.stringify({ phase: "progress", current }));
    }
    await page.waitForSelector("[data-testid=task-artifact]", { timeout: 30000 });
    const log = await page.$$eval("[data-testid=task-log] div", (rows) => rows.map((r) => r.textContent));
    const artifacts = await page.$$eval("[data-testid=task-artifact]", (links) => links.map((a) => ({ text: a.textContent, href: a.getAttribute("href") })));
    return { seen, log, artifacts };
  },
  // Open a definition's page and report its trigger decisions as listed.
  async decisions(page) {
    await page.goto(`${base}/#/definitions/${encodeURIComponent(arg)}`);
    await page.waitForSelector("table.decisions", { timeout: 30000 });
    const rows = await page.$$eval("table.decisions tr", (trs) => trs.slice(1).map((tr) => ({
      outcome: tr.querySelector(".badge").textContent, why: tr.children[3].textContent,
    })));
    return { rows };
  },
  // Open a definition's page and report its notifications as listed.
  async notifications(page) {
    await page.goto(`${base}/#/definitions/${encodeURIComponent(arg)}`);
    await page.waitForSelector("[data-testid=notifications] tr[data-kind]", { timeout: 30000 });
    const rows = await page.$$eval("[data-testid=notifications] tr[data-kind]", (trs) => trs.map((tr) => ({ kind: tr.dataset.kind, status: tr.dataset.status })));
    return { rows };
  },
  // Not a test: save a screenshot for the wiki. arg: "<hash>|<css selector to wait for>|<png path>".
  async screenshot(page) {
    const [hash, selector, file] = arg.split("|");
    await page.goto(`${base}/${hash}`);
    await page.waitForSelector(selector, { timeout: 30000 });
    await page.waitForLoadState("networkidle");
    await page.screenshot({ path: file, fullPage: true });
    return { file };
  },
  // Complete the first waiting human task from the inbox page.
  async inbox(page) {
    await page.goto(`${base}/#/inbox`);
    const card = await page.waitForSelector(`[data-human-task="${arg}"]`, { timeout: 30000 });
    const title = await card.$eval("h3", (n) => n.textContent);
    await (await card.$("textarea")).fill('{"approved_by_browser": true}');
    await (await card.$("button.primary")).click();
    await page.waitForFunction((id) => !document.querySelector(`[data-human-task="${id}"]`), arg, { timeout: 30000 }).catch(async (e) => {
      throw new Error(`${e.message}; the page shows: ${(await page.textContent("main")).slice(0, 400)}`);
    });
    return { title, gone: true };
  },
  // The definitions list: the tags of each row, then the rows left by a tag (the select), by
  // search text, and by clicking a tag. `arg` is JSON: {tag, search, chip}.
  async definitions(page) {
    const { tag, search, chip } = JSON.parse(arg);
    const rows = () => page.$$eval("main table tr.link", (trs) => trs.map((tr) => ({
      id: tr.querySelector("td").textContent, tags: [...tr.querySelectorAll(".tag")].map((t) => t.textContent) })));
    // Each filter re-renders the page: wait for a table other than the one marked stale.
    const rerendered = async (action) => {
      await page.$eval("main table", (t) => { t.dataset.stale = "1"; });
      await action();
      await page.waitForSelector("main table:not([data-stale])", { timeout: 30000 });
      return (await rows()).map((r) => r.id);
    };
    await page.goto(`${base}/#/definitions`);
    await page.waitForSelector("main table tr.link", { timeout: 30000 });
    const all = await rows();
    const options = await page.$$eval("main select option", (os) => os.map((o) => o.value));
    const byTag = await rerendered(() => page.selectOption("main select", tag));
    const bySearch = await rerendered(async () => {
      await page.selectOption("main select", "");
      await page.waitForSelector("main table:not([data-stale])", { timeout: 30000 });
      await page.$eval("main table", (t) => { t.dataset.stale = "1"; });
      await page.fill("main input[type=search]", search);
      await page.press("main input[type=search]", "Enter");
    });
    const byChip = await rerendered(async () => {
      await page.fill("main input[type=search]", "");
      await page.press("main input[type=search]", "Enter");
      await page.waitForSelector("main table:not([data-stale])", { timeout: 30000 });
      await page.$eval("main table", (t) => { t.dataset.stale = "1"; });
      await page.click(`main table .tag >> text="${chip}"`);
    });
    const selected = await page.$eval("main select", (s) => s.value);
    return { all, options, byTag, bySearch, byChip, selected };
  },
};

// The scenarios of the runs list and the definition page's chart live in lists.js.
Object.assign(scenarios, require("./lists.js")({ base, arg }));

(async () => {
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    // The UI keeps the API key in localStorage (it asks for one when it has none).
    await page.addInitScript((key) => localStorage.setItem("tf_api_key", key), process.env.TF_API_KEY || "");
    const seen = await scenarios[scenario](page);
    console.log(JSON.stringify({ phase: "done", ...seen }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});
