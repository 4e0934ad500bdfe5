// The customer's whole journey on the demo Portal page, after the install:
// order numbers by area code (progress bar), assign one with the picker, see
// the removal checklist list blockers, schedule port-outs; the carrier then
// completes the ports (over the API, as its own tools would) and the checklist
// turns green. usage: node journey.cjs <gateway URL> <carrier token>
"use strict";
const path = require("path");
const fs = require("fs");
const { chromium } = require(path.join(__dirname, "..", "..", "tools", "npm", "node_modules", "playwright-core"));

const [base, carrierToken] = process.argv.slice(2);
if (!base || !carrierToken) { console.error("usage: journey.cjs <gateway URL> <carrier token>"); process.exit(2); }
const shots = process.env.SCREENSHOT_DIR || path.join(__dirname, "screenshots");
fs.mkdirSync(shots, { recursive: true });
function check(cond, what) { if (!cond) throw new Error("check failed: " + what); }

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(base + "/");
    await page.waitForFunction(() => document.getElementById("badge").textContent.trim() === "VERIFIED", null, { timeout: 15000 });
    await page.waitForSelector("#numbers-card:not([hidden])");
    await page.waitForFunction(() => document.getElementById("removal-status").dataset.ready === "true", null, { timeout: 15000 });

    await page.fill("#area", "617");
    await page.fill("#qty", "2");
    await page.click("#order");
    await page.waitForFunction(() => document.getElementById("op-status").dataset.state === "succeeded", null, { timeout: 30000 });
    check(await page.$eval("#op-progress", (p) => p.value) === 100, "progress bar full");
    await page.waitForFunction(() => document.querySelectorAll("#numbers-table tbody tr").length === 2, null, { timeout: 15000 });
    await page.screenshot({ path: path.join(shots, "4-numbers-ordered.png"), fullPage: true });

    const first = page.locator("#numbers-table tbody tr").first();
    const number = await first.getAttribute("data-number");
    await first.locator("select.picker").selectOption({ index: 1 });
    await first.locator("button.assign").click();
    await page.waitForFunction((n) => {
      const tr = document.querySelector(`#numbers-table tr[data-number="${n}"] .assignee`);
      return tr && tr.textContent.startsWith("user:");
    }, number, { timeout: 15000 });
    await page.waitForFunction(() => document.querySelector('#blockers li[data-reason="assigned"]'), null, { timeout: 15000 });
    const reasons = await page.$$eval("#blockers li", (l) => l.map((x) => x.dataset.reason));
    check(reasons.includes("assigned") && reasons.includes("no_disposition"), "blockers listed: " + reasons);
    await page.screenshot({ path: path.join(shots, "5-removal-blocked.png"), fullPage: true });

    // Unassign, then schedule port-outs for both numbers.
    await first.locator("button.unassign").click();
    await page.waitForFunction(() => !document.querySelector('#blockers li[data-reason="assigned"]'), null, { timeout: 15000 });
    for (let i = 0; i < 2; i++) {
      await page.locator("#numbers-table tbody tr button.port-out").first().click();
      await page.waitForFunction((k) => document.querySelectorAll("#numbers-table .port-date").length === k, i + 1, { timeout: 15000 });
    }
    await page.waitForFunction(() => {
      const r = [...document.querySelectorAll("#blockers li")].map((x) => x.dataset.reason);
      return r.length === 2 && r.every((x) => x === "port_out_not_complete");
    }, null, { timeout: 15000 });
    await page.screenshot({ path: path.join(shots, "6-ports-scheduled.png"), fullPage: true });

    // The carrier completes the ports.
    const numbers = await page.$$eval("#numbers-table tbody tr", (l) => l.map((x) => x.dataset.number));
    for (const n of numbers) {
      const r = await fetch(`${base}/v1/accounts/demo-portal-account/zoom/numbers/${encodeURIComponent(n)}/port-out-complete`,
        { method: "POST", headers: { authorization: "Bearer " + carrierToken } });
      check(r.status === 200, "carrier completes the port of " + n + ": " + r.status);
    }
    await page.click("#removal-refresh");
    await page.waitForFunction(() => document.getElementById("removal-status").dataset.ready === "true", null, { timeout: 15000 });
    const color = await page.$eval("#removal-status", (el) => getComputedStyle(el).color);
    await page.screenshot({ path: path.join(shots, "7-removal-ready.png"), fullPage: true });
    check(color === "rgb(31, 157, 85)", "checklist is green: " + color);
    console.log(JSON.stringify({ ordered: numbers, removal_ready: true }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
