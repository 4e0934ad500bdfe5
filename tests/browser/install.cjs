// Browser walk of the verified install, as a customer does it:
// demo Portal page -> Install & Configure (new tab) -> zoom-sim consent -> Allow
// -> the Portal page refreshes itself and shows VERIFIED with the authorization code.
// usage: node tests/browser/install.cjs <gateway base URL>
// Prints one JSON line with what it saw; exits non-zero on any failed check.
"use strict";
const path = require("path");
const fs = require("fs");
const { chromium } = require(path.join(__dirname, "..", "..", "tools", "npm", "node_modules", "playwright-core"));

const base = process.argv[2];
if (!base) { console.error("usage: install.cjs <gateway URL>"); process.exit(2); }
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
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(base + "/");
    await page.waitForSelector("#badge");
    await page.waitForFunction(() => document.getElementById("status-text").dataset.status !== "");
    const before = (await page.textContent("#badge")).trim();
    check(before === "NOT CONNECTED", "badge before install is NOT CONNECTED, got " + before);
    await page.screenshot({ path: path.join(shots, "1-not-connected.png") });

    const [zoomTab] = await Promise.all([context.waitForEvent("page"), page.click("#install")]);
    let callbackCode = null;
    zoomTab.on("request", (req) => {
      const u = new URL(req.url());
      if (u.pathname === "/zoom/oauth/callback") callbackCode = u.searchParams.get("code");
    });
    await zoomTab.waitForURL(/\/oauth\/authorize\?/, { timeout: 15000 });
    await zoomTab.waitForSelector("#allow");
    const scopes = await zoomTab.textContent("#scopes");
    check(scopes.includes("phone:write:admin"), "consent page lists the app's scopes");
    await zoomTab.screenshot({ path: path.join(shots, "2-zoom-consent.png") });
    await Promise.all([zoomTab.waitForURL(/zoom=verified/, { timeout: 15000 }), zoomTab.click("#allow")]);

    // The Portal tab refreshes itself: no reload here.
    await page.waitForFunction(() => document.getElementById("badge").textContent.trim() === "VERIFIED",
                               null, { timeout: 15000 });
    const code = (await page.textContent("#auth-code")).trim();
    const badgeColor = await page.$eval("#badge", (el) => getComputedStyle(el).backgroundColor);
    await page.screenshot({ path: path.join(shots, "3-verified.png") });
    check(callbackCode, "Zoom redirected to the callback with a code");
    check(code === callbackCode, `displayed code ${code} equals the code Zoom issued ${callbackCode}`);
    check(badgeColor === "rgb(31, 157, 85)", "VERIFIED badge is green, got " + badgeColor);
    console.log(JSON.stringify({ verified: true, badge: "VERIFIED", authorization_code: code, badge_color: badgeColor }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
