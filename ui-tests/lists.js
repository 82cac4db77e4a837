// Browser scenarios of the runs list and the definition page's duration chart, merged into
// the scenarios of ui.js (same contract: the scenario answers what it saw, the Rust test asserts).
"use strict";

const TABLE = "[data-testid=runs-table]";

/** The rows of the runs list as shown: id, status, the duration cell's ms and text. */
const rows = (page) => page.$$eval(`${TABLE} tr[data-workflow-id]`, (trs) => trs.map((tr) => {
  const cell = tr.querySelector("[data-testid=run-duration]");
  return { id: tr.dataset.workflowId, status: tr.dataset.status, ms: Number(cell.dataset.ms), duration: cell.textContent };
}));

/**
 * Waits until the runs table shows a finished load of the hash query `query` at `cursor`
 * ("" for the newest page): each filter change draws a new table, each page refills it.
 */
async function shown(page, query, cursor = "") {
  await page.waitForFunction(([q, c]) => {
    const t = document.querySelector("[data-testid=runs-table]");
    return t && !t.hasAttribute("aria-busy") && t.dataset.query === q && t.dataset.cursor === c
      && (c === "" || !document.querySelector("[data-testid=runs-newer]").disabled);
  }, [query, cursor], { timeout: 30000 }).catch(async (e) => {
    throw new Error(`${e.message}; waiting for query ${query}, the page shows: ${(await page.textContent("main")).slice(0, 400)}`);
  });
}

module.exports = ({ base, arg }) => ({
  // The runs list of definition `arg` while its one run is held open: the duration ticks
  // without a reload; then (the Rust test completes the run when told "running") the row turns
  // completed by itself, from the stream.
  async runs_live(page) {
    await page.goto(`${base}/#/runs?definition_id=${encodeURIComponent(arg)}`);
    const cell = `${TABLE} tr[data-status=running] [data-testid=run-duration]`;
    await page.waitForSelector(cell, { timeout: 30000 });
    await page.evaluate(() => { window.sameDocument = true; }); // gone if the page reloads
    const read = () => page.$eval(cell, (td) => ({ ms: Number(td.dataset.ms), text: td.textContent }));
    const before = await read();
    await page.waitForFunction(([sel, ms]) => Number(document.querySelector(sel).dataset.ms) >= ms + 1000, [cell, before.ms], { timeout: 10000 });
    const ticked = await read();
    console.log(JSON.stringify({ phase: "running", before, ticked }));
    const done = await page.waitForSelector(`${TABLE} tr[data-status=completed] [data-testid=run-duration]`, { timeout: 60000 });
    const after = { ms: Number(await done.getAttribute("data-ms")), text: await done.textContent() };
    return { after, reloaded: await page.evaluate(() => window.sameDocument !== true) };
  },

  // A definition's page: first one without runs (the empty chart), then `arg.id`'s chart:
  // its marks, stats and legend, and where clicking the newest mark leads.
  async chart(page) {
    const { id, empty } = JSON.parse(arg);
    await page.goto(`${base}/#/definitions/${encodeURIComponent(empty)}`);
    const none = await (await page.waitForSelector("[data-testid=duration-chart-empty]", { timeout: 30000 })).textContent();
    await page.goto(`${base}/#/definitions/${encodeURIComponent(id)}`);
    await page.waitForSelector("[data-testid=duration-chart] [data-testid=duration-mark]", { timeout: 30000 });
    const marks = await page.$$eval("[data-testid=duration-chart] [data-testid=duration-mark]", (ms) => ms.map((m) => ({
      id: m.dataset.workflowId, status: m.dataset.status, href: m.getAttribute("href"), title: m.querySelector("title").textContent,
      shape: m.lastElementChild.tagName,
    })));
    const stats = await page.$eval("[data-testid=run-stats]", (s) => ({
      successRate: Number(s.dataset.successRate), p50: Number(s.dataset.p50Ms), p95: Number(s.dataset.p95Ms), count: Number(s.dataset.count), text: s.textContent,
    }));
    const legend = await page.$eval("[data-testid=duration-legend]", (l) => l.textContent);
    const axes = await page.$$eval("[data-testid=duration-chart] .axis-label", (ls) => ls.map((l) => l.textContent));
    // The newest run is drawn last (on top).
    const newest = marks[marks.length - 1].id;
    await page.click(`[data-testid=duration-mark][data-workflow-id="${newest}"]`);
    await page.waitForFunction(() => location.hash.startsWith("#/runs/"), null, { timeout: 30000 });
    const hash = decodeURIComponent(await page.evaluate(() => location.hash));
    return { none, marks, stats, legend, axes, newest, hash };
  },

  // The runs list of definition `arg.id`: typed into the definition filter, narrowed to failed
  // runs, reloaded (the filters persist), paged two by two, then narrowed to a future `since`
  // (typed into the datetime input), and a bad filter from the hash.
  async runs_list(page) {
    const { id } = JSON.parse(arg);
    const q = (params) => new URLSearchParams(params).toString();
    await page.goto(`${base}/#/runs`);
    await shown(page, "");
    await page.fill("[data-testid=runs-filter-definition]", id);
    await page.press("[data-testid=runs-filter-definition]", "Enter");
    await shown(page, q({ definition_id: id }));
    const all = await rows(page);

    await page.selectOption("[data-testid=runs-filter-status]", "failed");
    await shown(page, q({ definition_id: id, status: "failed" }));
    const failed = await rows(page);
    const failedHash = decodeURIComponent(await page.evaluate(() => location.hash));

    await page.reload();
    await shown(page, q({ definition_id: id, status: "failed" }));
    const reloaded = {
      rows: await rows(page),
      status: await page.$eval("[data-testid=runs-filter-status]", (s) => s.value),
      trigger: await page.$eval("[data-testid=runs-filter-trigger]", (s) => s.value),
      definition: await page.$eval("[data-testid=runs-filter-definition]", (s) => s.value),
    };

    const paged = q({ definition_id: id, limit: "2" });
    await page.goto(`${base}/#/runs?${paged}`);
    await shown(page, paged);
    const buttons = () => page.evaluate(() => ({
      newer: document.querySelector("[data-testid=runs-newer]").disabled, older: document.querySelector("[data-testid=runs-older]").disabled }));
    const first = { rows: (await rows(page)).map((r) => r.id), ...(await buttons()) };
    await page.click("[data-testid=runs-older]");
    await page.waitForFunction(() => document.querySelector("[data-testid=runs-table]").dataset.cursor !== "", null, { timeout: 30000 });
    const cursor = await page.$eval(TABLE, (t) => t.dataset.cursor);
    await shown(page, paged, cursor);
    const second = { rows: (await rows(page)).map((r) => r.id), ...(await buttons()) };
    await page.click("[data-testid=runs-newer]");
    await shown(page, paged, "");
    const back = { rows: (await rows(page)).map((r) => r.id), ...(await buttons()) };

    await page.goto(`${base}/#/runs?${q({ definition_id: id })}`);
    await shown(page, q({ definition_id: id }));
    await page.fill("[data-testid=runs-filter-since]", "2099-01-01T00:00");
    await page.waitForFunction(() => location.hash.includes("since="), null, { timeout: 30000 });
    const sinceHash = decodeURIComponent(await page.evaluate(() => location.hash));
    await shown(page, await page.evaluate(() => location.hash.split("?")[1]));
    const future = { hash: sinceHash, rows: await rows(page), input: await page.$eval("[data-testid=runs-filter-since]", (i) => i.value) };

    await page.goto(`${base}/#/runs?status=bogus`);
    const error = await (await page.waitForSelector("[data-testid=runs-error] .error-box", { timeout: 30000 })).textContent();
    return { all, failed, failedHash, reloaded, first, second, back, future, error };
  },
});
