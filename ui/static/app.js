// coexist UI: reads the registry's API with the pasted token, live through
// blocking queries (?index=N&wait=30s). It decides nothing: routing is
// asked of the registry (GET /v1/route).
"use strict";

const KEY = "coexist-token";
const state = { services: [], containers: [], nodes: [] };
let generation = 0; // bumps on every change; a stale matrix fill stops

const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(KEY) || "";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
  return e;
}
const badge = (s) => el("span", { class: "state " + s }, s);

async function get(path, index) {
  let url = path;
  if (index) url += (path.includes("?") ? "&" : "?") + "index=" + index + "&wait=30s";
  const resp = await fetch(url, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = new Error((body && body.error) || resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return { body, index: Number(resp.headers.get("X-Coexist-Index") || 0) };
}

function showError(msg) {
  $("error").hidden = !msg;
  $("error").textContent = msg || "";
}

// watch keeps state[name] current with blocking queries.
async function watch(name, path) {
  let index = 0;
  for (;;) {
    if (!token()) { await sleep(500); continue; }
    try {
      const r = await get(path, index);
      if (r.index < index) index = 0; else index = r.index;
      state[name] = r.body || [];
      $("live").textContent = "live";
      showError("");
      changed();
    } catch (e) {
      $("live").textContent = "reconnecting";
      showError(e.status === 401 || e.status === 403 ? "The registry refused the token: " + e.message : "Registry: " + e.message);
      index = 0;
      await sleep(1000);
    }
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function changed() {
  generation++;
  renderServices();
  renderContainers();
  renderNodes();
  renderTimeline();
  renderMatrix(generation);
}

function holders(svc, ver) {
  return state.containers.filter((c) => (c.services || []).some((s) => s.service === svc && s.version === ver));
}

function renderServices() {
  const tb = $("services").tBodies[0];
  tb.replaceChildren();
  for (const s of state.services) {
    for (const v of s.versions) {
      const hs = holders(s.name, v.version);
      const cs = hs.map((c) => c.id + "@" + c.node + " " + (c.status ? c.status.state : "pending"));
      tb.append(el("tr", { "data-service": s.name, "data-version": v.version },
        el("td", {}, s.name), el("td", {}, v.version), el("td", {}, v.clients),
        el("td", { class: "version-state" }, badge(v.state)),
        el("td", { class: "calls-per-minute" }, String(callsPerMinute(hs, s.name, v.version))),
        el("td", {}, cs.join(", ") || "-")));
    }
  }
}

// callsPerMinute sums the calls per minute the containers cs report for
// svc@ver: each agent's figure for the last minute, reported periodically.
function callsPerMinute(cs, svc, ver) {
  let n = 0;
  for (const c of cs) for (const s of (c.status && c.status.services) || [])
    if (s.service === svc && s.version === ver) n += s.calls_per_minute || 0;
  return n;
}

// lowerBound is the lowest version a range's own words name as admitted
// (">= 1.2" gives 1.2.0): a sample client version per range, whose route the
// registry then decides. It is not a compatibility decision.
function lowerBound(range) {
  let best = null;
  for (const part of range.split(",")) {
    const m = part.trim().match(/^(>=|>|=|~>)?\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/);
    if (!m) continue;
    let v = [Number(m[2]), Number(m[3] || 0), Number(m[4] || 0)];
    if (m[1] === ">") v[2]++;
    if (!best || cmp(v, best) > 0) best = v;
  }
  return (best || [0, 0, 0]).join(".");
}
function cmp(a, b) { for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i]; return 0; }
const parse = (s) => s.split(".").map(Number);

// clientCohorts returns the rows of the matrix: the live clients of the
// census when the registry has one, otherwise a sample client version per
// declared range.
async function clientCohorts() {
  try {
    const r = await get("/v1/census");
    const list = Array.isArray(r.body) ? r.body : (r.body && (r.body.watchers || r.body.clients)) || [];
    const rows = new Map();
    for (const w of list) {
      const kind = w.kind || "client";
      const name = w.name || w.client, version = w.version || w.client_version;
      if (kind !== "client" || !version) continue;
      const k = (name || "client") + "@" + version;
      const row = rows.get(k) || { label: k, version, name, instances: 0, calls: w.calls || [] };
      row.instances++;
      rows.set(k, row);
    }
    if (rows.size > 0) {
      return { source: "Rows are the live clients the registry's census counts (GET /v1/census); each cell is the version routing chooses for them (GET /v1/route).", rows: [...rows.values()] };
    }
    return sampleCohorts("The registry's census counts no live client yet");
  } catch (e) {
    return sampleCohorts("This registry has no census of live clients");
  }
}

// sampleCohorts is a row per declared range: its lowest client version.
function sampleCohorts(why) {
  const seen = new Set();
  for (const s of state.services) for (const v of s.versions) if (v.state !== "retired") seen.add(lowerBound(v.clients));
  const rows = [...seen].sort((a, b) => cmp(parse(a), parse(b))).map((v) => ({ label: "client " + v, version: v }));
  return { source: why + ": each row is the lowest client version one declared range admits; each cell is the version routing chooses for it (GET /v1/route, as coexist route does).", rows };
}

async function renderMatrix(gen) {
  const { source, rows } = await clientCohorts();
  if (gen !== generation) return;
  const services = state.services.map((s) => s.name);
  const cells = await Promise.all(rows.map((row) => Promise.all(services.map(async (svc) => {
    const q = "/v1/route?service=" + encodeURIComponent(svc) + "&client_version=" + encodeURIComponent(row.version) +
      (row.name ? "&client=" + encodeURIComponent(row.name) : "");
    try {
      const r = await get(q);
      return { text: svc + " " + r.body.version, state: r.body.state };
    } catch (e) {
      return { text: "none", state: "none", why: e.message };
    }
  }))));
  if (gen !== generation) return;
  $("matrix-source").textContent = source;
  const t = $("matrix");
  t.tHead.replaceChildren(el("tr", {}, el("th", {}, "client"), ...services.map((s) => el("th", {}, s))));
  const tb = t.tBodies[0];
  tb.replaceChildren();
  rows.forEach((row, i) => {
    tb.append(el("tr", { "data-client": row.version },
      el("th", {}, row.label + (row.instances ? " (" + row.instances + ")" : "")),
      ...cells[i].map((c, j) => {
        const td = el("td", { "data-service": services[j], class: c.state === "none" ? "none" : "" }, "→ " + c.text + " ");
        if (c.state !== "none") td.append(badge(c.state));
        if (c.why) td.title = c.why;
        return td;
      })));
  });
}

function ago(t) {
  if (!t) return "-";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(t)) / 1000));
  return s < 60 ? s + "s ago" : s < 3600 ? Math.round(s / 60) + "m ago" : Math.round(s / 3600) + "h ago";
}

function renderContainers() {
  const box = $("containers");
  box.replaceChildren();
  const byNode = new Map();
  for (const c of state.containers) {
    if (!byNode.has(c.node)) byNode.set(c.node, []);
    byNode.get(c.node).push(c);
  }
  for (const [node, cs] of [...byNode.entries()].sort()) {
    const tb = el("tbody");
    for (const c of cs) {
      const st = c.status || {};
      tb.append(el("tr", { "data-container": c.id },
        el("td", {}, c.id), el("td", {}, (c.services || []).map((s) => s.service + "@" + s.version).join(", ")),
        el("td", {}, badge(st.state || "pending"), c.desired === "deleted" ? " deleting" : ""),
        el("td", {}, st.pid || "-"), el("td", {}, ago(st.started_at)), el("td", {}, st.restarts || 0),
        el("td", {}, st.message ? el("pre", {}, st.message) : "-")));
    }
    box.append(el("h3", {}, "node " + node), el("table", {},
      el("thead", {}, el("tr", {}, ...["container", "services", "state", "pid", "started", "restarts", "last message"].map((h) => el("th", {}, h)))), tb));
  }
  if (!state.containers.length) box.append(el("p", { class: "muted" }, "no containers"));
}

function renderNodes() {
  const tb = $("nodes").tBodies[0];
  tb.replaceChildren();
  for (const n of state.nodes) {
    const count = state.containers.filter((c) => c.node === n.id).length;
    tb.append(el("tr", { "data-node": n.id }, el("td", {}, n.id), el("td", {}, badge(n.status)),
      el("td", {}, n.address || "-"), el("td", {}, n.gateway || "-"), el("td", {}, count)));
  }
}

// renderTimeline lists the last records to change, newest first, by the
// registry's modify index.
function renderTimeline() {
  const items = [];
  for (const s of state.services) for (const v of s.versions)
    items.push({ i: v.modify_index, text: "version " + s.name + "@" + v.version + " " + v.state + " (clients " + v.clients + ")" });
  for (const c of state.containers)
    items.push({ i: c.modify_index, text: "container " + c.id + " on " + c.node + ": " + (c.desired === "deleted" ? "deleting, " : "") + (c.status ? c.status.state : "pending") });
  for (const n of state.nodes) items.push({ i: n.modify_index, text: "node " + n.id + " " + n.status });
  items.sort((a, b) => b.i - a.i);
  $("timeline").replaceChildren(...items.slice(0, 20).map((x) => el("li", {}, el("span", { class: "muted" }, "#" + x.i + " "), x.text)));
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token").value.trim();
    if (v) sessionStorage.setItem(KEY, v);
    $("token").value = "";
    $("token").placeholder = v ? "token set for this session" : $("token").placeholder;
  });
  $("forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
  if (token()) $("token").placeholder = "token set for this session";
  else showError("Paste a registry token to start (a read token is enough).");
  watch("services", "/v1/services");
  watch("containers", "/v1/containers");
  watch("nodes", "/v1/nodes");
});
