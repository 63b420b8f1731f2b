// The lockd dashboard. Plain JavaScript, no dependencies. Lock names and
// owners come from API users: they are only ever set as textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  replica: "", peers: [], token: sessionStorage.getItem("lockd-token") || "",
  // name -> {name, kind, limit, queue, delayUntil, contended, holders}; holders: fence ->
  // {owner, fence, mode, replica, source, ttlMs, expiresAt} (the demo's lock has fence 0)
  names: new Map(),
  refreshTimer: 0,
  lastEventID: "", retry: 1000,
  events: 0, // events seen, so a listing that raced one is not applied
};

// el builds an element with text children only.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function headers(extra) {
  const h = Object.assign({}, extra);
  if (state.token) h.Authorization = "Bearer " + state.token;
  return h;
}

function banner(text) {
  $("banner").hidden = !text;
  $("banner").textContent = text || "";
}

function streamState(text, ok) {
  $("stream-state").textContent = text;
  $("stream-state").className = "state " + (ok ? "ok" : "bad");
}

// --- names: locks and semaphores ---------------------------------------

// entry is what the page knows of one name. A name is listed while it has
// a holder, a waiter in its fair queue, or a lock-delay in force.
function entry(name) {
  let e = state.names.get(name);
  if (!e) {
    e = { name, kind: "", limit: 0, queue: 0, delayUntil: 0, contended: 0, holders: new Map() };
    state.names.set(name, e);
  }
  return e;
}

// forgetIfIdle drops a name nobody holds, waits for or is kept from.
function forgetIfIdle(e) {
  if (!e.holders.size && !e.queue && e.delayUntil <= Date.now()) state.names.delete(e.name);
}

// refreshLocks reconciles the table with GET /v1/locks: what the events
// cannot say (a name's kind and mode, a semaphore's limit, a lock-delay,
// demo extensions, names taken before the page opened).
async function refreshLocks() {
  const before = state.events;
  const seen = new Map();
  let cursor = "";
  for (let page = 0; page < 5; page++) {
    const resp = await fetch("/v1/locks?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""), { headers: headers() });
    if (resp.status === 401) { askToken(); return; }
    if (!resp.ok) throw new Error("GET /v1/locks answered " + resp.status);
    const body = await resp.json();
    for (const l of body.locks) seen.set(l.name, l);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  if (state.events !== before) return; // older than what the events said; the next one will do
  const now = Date.now();
  const names = new Map();
  for (const l of seen.values()) {
    const old = state.names.get(l.name);
    const e = { name: l.name, kind: l.kind || "lock", limit: l.limit || 0, queue: l.queue || 0,
      delayUntil: l.delay_until ? Date.parse(l.delay_until) : 0, contended: old ? old.contended : 0, holders: new Map() };
    // An older replica lists only the highest fence's holder.
    const holders = l.holders || (l.owner || l.fence ? [{ owner: l.owner, fence: l.fence, ttl_ms: l.ttl_ms }] : []);
    for (const h of holders) {
      const was = old && old.holders.get(h.fence);
      e.holders.set(h.fence, {
        owner: h.owner, fence: h.fence, mode: h.mode || l.mode || "",
        ttlMs: was && was.ttlMs ? was.ttlMs : h.ttl_ms, expiresAt: now + h.ttl_ms,
        source: was ? was.source : (h.fence ? "v1" : "demo"), replica: was ? was.replica : "",
      });
    }
    names.set(l.name, e);
  }
  state.names = names;
  renderLocks();
}

// refreshSoon asks for a listing shortly after events that leave something
// unknown (a new name's kind, a lock-delay after an expiry), once per burst.
function refreshSoon() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = 0;
    refreshLocks().catch(() => {});
  }, 300);
}

function secondsLeft(until) {
  return (Math.max(0, until - Date.now()) / 1000).toFixed(1) + " s";
}

// holderCells are a holder's cells; a name nobody holds has dashes.
function holderCells(e, h) {
  if (!h) {
    return [el("td", { class: "owner muted" }, e.queue ? "none yet" : "none"), el("td", { class: "fence" }, "—"),
      el("td", { class: "mode" }, e.kind === "semaphore" && e.limit ? "limit " + e.limit : "—"),
      el("td", { class: "replica" }, "—"), el("td", { class: "left" }, "—")];
  }
  const left = Math.max(0, h.expiresAt - Date.now());
  const bar = el("span", { class: "bar", "aria-hidden": "true" }, el("span"));
  bar.firstChild.style.width = (h.ttlMs ? Math.min(100, 100 * left / h.ttlMs) : 0) + "%";
  return [
    el("td", { class: "owner" }, h.owner || "—"),
    el("td", { class: "fence" }, h.fence ? String(h.fence) : "—"),
    el("td", { class: "mode" }, e.kind === "semaphore" ? (e.limit ? "limit " + e.limit : "…") : (h.mode || "…")),
    el("td", { class: "replica" }, h.replica || "—"),
    el("td", { class: "left" }, bar, secondsLeft(h.expiresAt)),
  ];
}

// renderLocks draws one row per holder. A name's own cells (its kind, queue,
// lock-delay and refusals) span its holders' rows.
function renderLocks() {
  const now = Date.now();
  for (const e of [...state.names.values()]) {
    if (e.delayUntil && e.delayUntil <= now) {
      e.delayUntil = 0;
      forgetIfIdle(e);
    }
  }
  const names = [...state.names.values()].sort((a, b) => a.name.localeCompare(b.name));
  const rows = [];
  for (const e of names) {
    const holders = [...e.holders.values()].sort((a, b) => a.fence - b.fence);
    const demo = holders.some((h) => h.source === "demo");
    const span = { rowspan: String(Math.max(1, holders.length)) };
    const kind = e.kind === "semaphore" ? "semaphore" : demo ? "demo /lock" : e.kind || "…";
    const delay = e.delayUntil > now
      ? "until " + new Date(e.delayUntil).toISOString().slice(11, 19) + " (" + Math.ceil((e.delayUntil - now) / 1000) + " s)" : "—";
    (holders.length ? holders : [null]).forEach((h, i) => {
      const cells = holderCells(e, h);
      if (i === 0) {
        cells.unshift(el("td", Object.assign({ class: "name" }, span), e.name),
          el("td", Object.assign({ class: "kind" }, span), kind));
        cells.push(el("td", Object.assign({ class: "queue" }, span), String(e.queue)),
          el("td", Object.assign({ class: "delay" + (e.delayUntil > now ? " delayed" : "") }, span), delay),
          el("td", Object.assign({ class: "refused" + (e.contended ? " contended" : "") }, span), String(e.contended)));
      }
      rows.push(el("tr", { "data-name": e.name, "data-kind": e.kind, "data-fence": h ? String(h.fence) : "",
        class: i === 0 ? "first" : "" }, ...cells));
    });
  }
  $("locks").tBodies[0].replaceChildren(...rows);
  $("no-locks").hidden = rows.length > 0;
}

// --- events ------------------------------------------------------------

const demoStatus = { contended: "500", lost: "500", released: "200" };

// applyEvent updates the table at once; a listing soon after fills in what
// an event does not carry.
function applyEvent(ev) {
  const e = ev.type === "acquired" || ev.type === "queued" ? entry(ev.name) : state.names.get(ev.name);
  if (!e) return;
  if (ev.type === "acquired") {
    if (!e.holders.size) e.contended = 0;
    // While a fair queue exists every grant comes from it.
    if (e.queue > 0) e.queue--;
    const other = e.holders.values().next().value;
    e.holders.set(ev.fence, { owner: ev.owner, fence: ev.fence, mode: other ? other.mode : "", replica: ev.replica,
      source: ev.source, ttlMs: ev.ttl_ms, expiresAt: Date.now() + ev.ttl_ms });
    if (ev.source === "demo") e.kind = "lock";
    if (!e.kind || (e.kind === "lock" && ev.source !== "demo" && !(other && other.mode))) refreshSoon();
  } else if (ev.type === "queued") {
    e.queue++;
    if (!e.kind) refreshSoon();
  } else if (ev.type === "extended") {
    const h = e.holders.get(ev.fence);
    if (h) Object.assign(h, { ttlMs: ev.ttl_ms, expiresAt: Date.now() + ev.ttl_ms, owner: ev.owner });
    else refreshSoon();
  } else if (ev.type === "released" || ev.type === "expired" || ev.type === "lost") {
    if (ev.fence) e.holders.delete(ev.fence);
    else if (ev.source === "demo") e.holders.delete(0);
    else refreshSoon(); // a refused extend or release: whose lease was gone, the listing says
    // An expiry may start a lock-delay, which only the listing shows.
    if (ev.type === "expired") refreshSoon(); else forgetIfIdle(e);
  } else if (ev.type === "contended") {
    e.contended++;
  }
}

function onEvent(ev) {
  state.events++;
  applyEvent(ev);
  renderLocks();

  const status = ev.source === "demo" && demoStatus[ev.type];
  const item = el("li", { "data-type": ev.type, "data-name": ev.name, "data-status": status || "" },
    el("time", { datetime: ev.time }, ev.time.slice(11, 23)), " ",
    el("span", { class: "type " + ev.type }, ev.type),
    ev.name, ev.fence ? " · fence " + ev.fence : "", ev.owner ? " · " + ev.owner : "",
    " · ", ev.replica, " · ", ev.source === "demo" ? "GET /lock" : "/v1");
  if (status) item.append(el("span", { class: "status" }, "HTTP " + status));
  if (ev.commands && ev.commands.length) {
    item.append(el("details", { open: "" }, el("summary", {}, "Redis commands of this request (as the profiler shows them)"),
      el("pre", {}, ev.commands.join("\n"))));
  }
  const list = $("timeline");
  list.prepend(item);
  while (list.children.length > 300) list.lastChild.remove();
}

// stream reads /v1/events with fetch rather than EventSource, which cannot
// send an Authorization header (and a token must never go in a URL).
async function stream() {
  for (;;) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (state.lastEventID) h["Last-Event-ID"] = state.lastEventID;
      const resp = await fetch("/v1/events", { headers: h, cache: "no-store" });
      if (resp.status === 401) { askToken(); streamState("needs a token", false); return; }
      if (resp.status === 503) throw new Error("Redis cannot be reached (503)");
      // An id this deployment no longer reads (it moved to or from cluster
      // mode): start again from now rather than retry it for ever.
      if (resp.status === 400) { state.lastEventID = ""; throw new Error("the last event id was refused; starting from now"); }
      if (!resp.ok) throw new Error("GET /v1/events answered " + resp.status);
      streamState("live", true);
      banner("");
      state.retry = 1000;
      refreshLocks().catch(() => {});
      await readEvents(resp.body.getReader());
      throw new Error("the event stream ended");
    } catch (err) {
      const wait = state.retry;
      state.retry = Math.min(wait * 2, 30000);
      streamState("reconnecting", false);
      banner("This replica or its Redis is unreachable: " + err.message + ". Retrying in " + Math.round(wait / 1000) + " s.");
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const frame = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let id = "", data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("id: ")) id = line.slice(4);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (!data) continue; // a comment: keep-alive
      state.lastEventID = id;
      onEvent(JSON.parse(data));
    }
  }
}

// --- demo actions --------------------------------------------------------

function logDemo(text, status) {
  const item = el("li", { "data-status": String(status || "") }, new Date().toISOString().slice(11, 23), " ", text);
  if (status) item.append(el("span", { class: "status" }, "HTTP " + status));
  $("demo-log").prepend(item);
}

async function demoRequest(base, label, id) {
  const started = performance.now();
  logDemo("GET /lock?resource_id=" + id + " sent to " + label);
  try {
    // With API_TOKENS set, /lock needs the token too.
    const resp = await fetch(base + "/lock?resource_id=" + encodeURIComponent(id), { headers: headers() });
    if (resp.status === 401) askToken();
    const body = await resp.json();
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    // The demo's own error shape is {error, details}; a refusal before the
    // demo (401, 403) has the /v1 shape {error: {code, message}}.
    const text = body.message || (body.error && body.error.message) || body.error + (body.details ? " (" + body.details + ")" : "");
    logDemo(label + " answered after " + secs + " s: " + text, resp.status);
  } catch (err) {
    logDemo(label + " is unreachable: " + err.message);
  }
}

function resource() {
  const input = $("resource");
  return input.checkValidity() ? input.value : "my-test-key";
}

// runScenario is the README's: one request to this replica, and a moment
// later one for the same resource to a peer (or this replica again).
async function runScenario() {
  const id = resource();
  const peer = state.peers[0] || "";
  const first = demoRequest("", state.replica + " (this replica)", id);
  await new Promise((r) => setTimeout(r, 300));
  const second = demoRequest(peer, peer ? peer : state.replica + " (again: no peer configured)", id);
  await Promise.all([first, second]);
}

async function runV1() {
  const name = resource() + "-v1";
  const peer = state.peers[0] || "";
  const json = { "Content-Type": "application/json" };
  try {
    const resp = await fetch("/v1/locks/" + encodeURIComponent(name) + "/acquire",
      { method: "POST", headers: headers(json), body: JSON.stringify({ ttl: "30s", owner: "dashboard" }) });
    const lease = await resp.json();
    logDemo("/v1 acquire of " + name + " on this replica" + (resp.ok ? ": fence " + lease.fence : ": " + lease.error.message), resp.status);
    if (!resp.ok) return;
    await new Promise((r) => setTimeout(r, 2000));
    const rel = await fetch(peer + "/v1/locks/" + encodeURIComponent(name) + "/release",
      { method: "POST", headers: headers(json), body: JSON.stringify({ token: lease.token }) });
    logDemo("/v1 release of " + name + " on " + (peer || "this replica"), rel.status);
  } catch (err) {
    logDemo("/v1 demo failed: " + err.message);
  }
}

// --- peers and start-up ---------------------------------------------------

async function checkPeers() {
  const spans = state.peers.map(async (peer) => {
    let ok = false;
    try {
      ok = (await fetch(peer + "/v1/locks?limit=1", { headers: headers() })).ok;
    } catch (err) { ok = false; }
    return el("span", { class: "peer state " + (ok ? "ok" : "bad") }, "peer " + peer + ": " + (ok ? "reachable" : "unreachable"));
  });
  $("peers").replaceChildren(...await Promise.all(spans));
}

function askToken() {
  $("token-form").hidden = false;
  $("token").focus();
}

// loadConfig reads config.json. With API_TOKENS set, the replica's name
// and its peers come only with a valid token, so it is read again once the
// user has given one.
async function loadConfig() {
  const cfg = await (await fetch("config.json", { headers: headers(), cache: "no-store" })).json();
  state.replica = cfg.replica;
  state.peers = cfg.peers;
  $("replica").textContent = cfg.replica;
  if (state.peers.length) checkPeers();
  return cfg;
}

async function start() {
  const cfg = await loadConfig();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("lockd-token", state.token);
    $("token-form").hidden = true;
    loadConfig().catch((err) => banner("The dashboard could not read its settings: " + err.message));
    stream();
  });
  $("run-scenario").addEventListener("click", runScenario);
  $("run-v1").addEventListener("click", runV1);
  if (cfg.auth && !state.token) { askToken(); streamState("needs a token", false); } else stream();
  setInterval(renderLocks, 250);
  setInterval(() => { if (!$("stream-state").classList.contains("bad")) refreshLocks().catch(() => {}); }, 2000);
  setInterval(() => { if (state.peers.length) checkPeers(); }, 5000);
}

start().catch((err) => banner("The dashboard could not start: " + err.message));
