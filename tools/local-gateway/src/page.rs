//! The demo Portal page: Settings > Integration for one demo Portal account,
//! shaped like the carrier's guide. Local only.

pub fn render(account: &str) -> String {
    PAGE.replace(
        "__ACCOUNT_JSON__",
        &serde_json::to_string(account).unwrap_or_else(|_| "\"\"".into()),
    )
}

const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Carrier Portal · Settings · Integration</title>
<style>
 body{font-family:system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
 header{background:#14213d;color:#fff;padding:.8em 1.5em;font-weight:600}
 nav{padding:.6em 1.5em;color:#667;font-size:.9em}
 main{max-width:46em;margin:1em auto;padding:0 1em}
 .card{background:#fff;border-radius:10px;box-shadow:0 1px 4px #0002;padding:1.4em 1.6em}
 .row{display:flex;align-items:center;gap:1em;flex-wrap:wrap}
 h2{margin:.2em 0 .6em;font-size:1.2em}
 button{background:#0b5cff;color:#fff;border:0;border-radius:6px;padding:.6em 1.2em;font-size:1em;cursor:pointer}
 button:disabled{opacity:.6;cursor:default}
 .badge{display:inline-block;border-radius:999px;padding:.25em .9em;font-weight:700;font-size:.85em;letter-spacing:.05em}
 .verified{background:#1f9d55;color:#fff}.pending{background:#f4b400;color:#222}
 .not_connected,.disconnected{background:#d0d4dc;color:#333}.needs_reauth{background:#d93025;color:#fff}
 code{background:#eef1f6;padding:.15em .4em;border-radius:4px;word-break:break-all}
 #note{margin:.8em 0 0;color:#555}#banner{margin:0 0 1em;padding:.6em 1em;border-radius:6px;display:none}
 section.card{margin-bottom:1em} table{border-collapse:collapse;width:100%;margin-top:1em;font-size:.9em}
 th,td{border-bottom:1px solid #e3e6ec;padding:.35em .4em;text-align:left} #removal-status.ready{color:#1f9d55;font-weight:700}
 #blockers li{margin:.3em 0} .small{font-size:.85em;color:#667}
 dl{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1em;margin:1em 0 0}dt{color:#667}
</style></head>
<body>
<header>Carrier Portal</header>
<nav>Settings &gt; Integration</nav>
<main>
 <div id="banner"></div>
 <section class="card">
  <div class="row"><h2>Zoom Phone</h2><span id="badge" class="badge not_connected">NOT CONNECTED</span></div>
  <p>Verify your account: install the carrier's Zoom app and allow access. Ordering or uploading
     numbers and provisioning options become available once the account is <b>VERIFIED</b>.</p>
  <div class="row"><button id="install" type="button">Install &amp; Configure</button>
   <span id="status-text" data-status="">Loading…</span></div>
  <dl id="details" hidden>
   <dt>Authorization code</dt><dd><code id="auth-code"></code></dd>
   <dt>Zoom account</dt><dd><code id="zoom-account"></code></dd>
   <dt>Verified at</dt><dd id="verified-at"></dd>
   <dt>Capabilities</dt><dd id="capabilities"></dd>
  </dl>
  <p id="note"></p>
 </section>
 <section class="card" id="numbers-card" hidden>
  <h2>Phone numbers</h2>
  <div class="row">
   <label>Area code <input id="area" value="617" size="4"></label>
   <label>Quantity <input id="qty" type="number" value="2" min="1" max="100" style="width:4em"></label>
   <button id="order" type="button">Order numbers</button>
  </div>
  <div class="row" style="margin-top:.8em">
   <textarea id="upload-text" rows="3" cols="40" placeholder="Upload numbers you have with us: one E.164 number per line, or CSV with a header row"></textarea>
   <button id="upload" type="button">Upload</button>
  </div>
  <div class="row" style="margin-top:.8em"><progress id="op-progress" max="100" value="0"></progress><span id="op-status"></span></div>
  <table id="numbers-table"><thead><tr><th>Number</th><th>State</th><th>Assigned to</th><th>Assign</th><th>Port-out</th></tr></thead><tbody></tbody></table>
 </section>
 <section class="card" id="removal-card" hidden>
  <h2>Removing the app</h2>
  <p id="removal-status"></p>
  <ul id="blockers"></ul>
  <button id="removal-refresh" type="button">Check again</button>
 </section>
</main>
<script>
const ACCOUNT = __ACCOUNT_JSON__;
const LABEL = {verified:"VERIFIED", pending:"PENDING", not_connected:"NOT CONNECTED",
               needs_reauth:"NEEDS RE-AUTHORIZATION", disconnected:"DISCONNECTED"};
let token = null, polling = null;
const $ = (id) => document.getElementById(id);

async function getToken() {
  const r = await fetch("/__dev/token?account_id=" + encodeURIComponent(ACCOUNT));
  if (!r.ok) throw new Error("dev token: HTTP " + r.status);
  token = (await r.json()).token;
}
async function api(method, path, body) {
  if (!token) await getToken();
  const init = {method, headers: {"Authorization": "Bearer " + token}};
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((data.detail || data.message || ("HTTP " + r.status)));
  return data;
}
function render(s) {
  const badge = $("badge");
  badge.className = "badge " + s.status;
  badge.textContent = LABEL[s.status] || s.status;
  $("status-text").dataset.status = s.status;
  $("status-text").textContent =
    s.status === "verified" ? "Your Zoom account is verified." :
    s.status === "pending" ? "Waiting for you to allow access in the Zoom tab…" :
    s.status === "needs_reauth" ? "Zoom no longer accepts our access: run Install & Configure again." :
    s.status === "disconnected" ? "The app was removed in Zoom." : "Not connected to Zoom yet.";
  $("details").hidden = !s.verified;
  $("auth-code").textContent = s.authorization_code || "";
  $("zoom-account").textContent = s.zoom_account_id || "";
  $("verified-at").textContent = s.verified_at || "";
  const c = s.capabilities || {};
  $("capabilities").textContent = ["order_numbers", "upload_numbers", "provisioning"]
     .map(k => k.replace("_", " ") + ": " + (c[k] ? "yes" : "no")).join(" · ");
  showNumbers(s.verified);
  if (s.verified && !s.install_in_progress) {
    if (polling) { clearInterval(polling); polling = null; }
    $("note").textContent = "";
  }
}
async function refresh() {
  try { render(await api("GET", "/v1/accounts/" + encodeURIComponent(ACCOUNT) + "/zoom")); }
  catch (e) { $("note").textContent = "Could not load the status: " + e.message; }
}
function startPolling() { if (!polling) polling = setInterval(refresh, 1000); }

$("install").addEventListener("click", async () => {
  const tab = window.open("about:blank", "_blank");
  $("install").disabled = true;
  try {
    const r = await api("POST", "/v1/accounts/" + encodeURIComponent(ACCOUNT) + "/zoom/install",
                        {return_to: location.origin + "/settings/integration"});
    if (tab) tab.location.href = r.authorize_url; else location.href = r.authorize_url;
    $("note").textContent = "Finish in the Zoom tab; this page updates by itself.";
    startPolling();
    await refresh();
  } catch (e) {
    if (tab) tab.close();
    $("note").textContent = "Install could not start: " + e.message;
  } finally { $("install").disabled = false; }
});

// ---- numbers ----
let options = null, opPoll = null;
const acct = () => "/v1/accounts/" + encodeURIComponent(ACCOUNT) + "/zoom";
function showNumbers(verified) {
  $("numbers-card").hidden = !verified; $("removal-card").hidden = !verified;
  if (verified && !showNumbers.done) { showNumbers.done = true; loadOptions().then(loadNumbers); loadRemoval(); }
}
async function loadOptions() {
  try { options = await api("GET", acct() + "/provisioning-options"); } catch (e) { $("note").textContent = "Provisioning options: " + e.message; }
}
function picker(n) {
  const sel = document.createElement("select");
  sel.className = "picker";
  const add = (type, list, label) => (list || []).forEach(x => {
    const o = document.createElement("option"); o.value = type + ":" + x.id; o.textContent = label + ": " + x.name; sel.appendChild(o);
  });
  if (options) { add("user", options.users, "User"); add("call_queue", options.call_queues, "Call queue"); add("auto_receptionist", options.auto_receptionists, "Auto receptionist"); }
  return sel;
}
async function loadNumbers() {
  const page = await api("GET", acct() + "/numbers?limit=200");
  const tb = $("numbers-table").querySelector("tbody");
  tb.innerHTML = "";
  for (const n of page.items) {
    const tr = document.createElement("tr"); tr.dataset.number = n.number;
    const cell = (t) => { const td = document.createElement("td"); td.textContent = t; tr.appendChild(td); return td; };
    cell(n.number); cell(n.state + (n.porting_in ? " (porting in)" : ""));
    cell(n.assignee ? n.assignee.type + ": " + n.assignee.name : "—").className = "assignee";
    const a = cell(""); const sel = picker(n); a.appendChild(sel);
    const ab = document.createElement("button"); ab.textContent = "Assign"; ab.className = "assign"; a.appendChild(ab);
    const ub = document.createElement("button"); ub.textContent = "Unassign"; ub.className = "unassign"; a.appendChild(ub);
    ab.onclick = () => act(async () => { const [type, id] = sel.value.split(":"); await api("PUT", acct() + "/numbers/" + encodeURIComponent(n.number) + "/assignment", {type, id}); });
    ub.onclick = () => act(() => api("DELETE", acct() + "/numbers/" + encodeURIComponent(n.number) + "/assignment"));
    const p = cell("");
    if (n.state === "port_out_scheduled") { p.textContent = "scheduled " + n.port_out_date; p.className = "port-date"; }
    else if (n.state === "in_zoom") {
      const d = document.createElement("input"); d.type = "date"; d.className = "port-date-input"; d.value = new Date().toISOString().slice(0, 10); p.appendChild(d);
      const pb = document.createElement("button"); pb.textContent = "Schedule port-out"; pb.className = "port-out"; p.appendChild(pb);
      pb.onclick = () => act(() => api("PUT", acct() + "/numbers/" + encodeURIComponent(n.number) + "/port-out", {date: d.value, unassign_on_port_day: true}));
    }
    tb.appendChild(tr);
  }
}
async function act(f) {
  try { await f(); $("note").textContent = ""; } catch (e) { $("note").textContent = e.message; }
  await loadNumbers(); await loadRemoval();
}
function watch(opId) {
  if (opPoll) clearInterval(opPoll);
  const tick = async () => {
    const op = await api("GET", acct() + "/operations/" + opId + "?limit=1");
    const done = op.succeeded + op.failed;
    $("op-progress").value = op.total ? Math.round(100 * done / op.total) : 100;
    $("op-status").textContent = op.state + ": " + op.succeeded + " in Zoom, " + op.failed + " failed, " + op.pending + " pending";
    $("op-status").dataset.state = op.state;
    if (op.state !== "queued" && op.state !== "running") { clearInterval(opPoll); opPoll = null; await loadNumbers(); await loadRemoval(); }
  };
  opPoll = setInterval(tick, 500); tick();
}
$("order").addEventListener("click", async () => {
  try { const r = await api("POST", acct() + "/numbers/orders", {area_code: $("area").value, quantity: Number($("qty").value)}); watch(r.operation_id); }
  catch (e) { $("note").textContent = "Order: " + e.message; }
});
$("upload").addEventListener("click", async () => {
  const lines = $("upload-text").value.split(/\r?\n/).map(l => l.trim()).filter(Boolean);
  const rows = (lines[0] || "").toLowerCase().startsWith("number") ? lines.slice(1).map(l => ({number: l.split(",")[0].trim()})) : lines.map(l => ({number: l}));
  try { const r = await api("POST", acct() + "/numbers/uploads", {numbers: rows}); watch(r.operation_id);
        if (r.rejected.length) $("note").textContent = "Rejected rows: " + r.rejected.map(x => x.row + " (" + x.error + ")").join(", "); }
  catch (e) { $("note").textContent = "Upload: " + e.message; }
});
async function loadRemoval() {
  try {
    const rc = await api("GET", acct() + "/removal-check");
    const st = $("removal-status");
    st.className = rc.ready ? "ready" : ""; st.dataset.ready = String(rc.ready);
    st.textContent = rc.ready ? "Ready: remove the app in the Zoom App Marketplace." : "Before removing the app:";
    const ul = $("blockers"); ul.innerHTML = "";
    for (const b of rc.blockers) {
      const li = document.createElement("li"); li.dataset.reason = b.reason;
      li.textContent = (b.number ? b.number + " — " : "") + b.detail + ". "; const s = document.createElement("span"); s.className = "small"; s.textContent = b.next_step; li.appendChild(s);
      ul.appendChild(li);
    }
  } catch (e) { $("removal-status").textContent = "Removal check: " + e.message; }
}
$("removal-refresh").addEventListener("click", async () => { await loadNumbers(); await loadRemoval(); });

const q = new URLSearchParams(location.search);
if (q.get("zoom")) {
  const b = $("banner"); b.style.display = "block";
  const outcome = q.get("zoom");
  b.style.background = outcome === "verified" ? "#e3f6ea" : "#fdecea";
  b.textContent = outcome === "verified" ? "Zoom account verified. You can close this tab."
    : outcome === "finish_in_portal" ? "Zoom app installed. Finish with Install & Configure below to verify your account."
    : "Zoom did not connect: " + (q.get("reason") || "unknown reason") + ".";
}
refresh().then(() => { if ($("status-text").dataset.status === "pending") startPolling(); });
</script>
</body></html>
"##;
