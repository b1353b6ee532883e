// feedctl monitor dashboard: plain JS, no dependencies, works offline.
// State comes from one Server-Sent-Events stream (/api/events): a "snapshot" frame
// first, then routed events and a "feeds" tick every second. Text goes into the
// page with textContent only.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POINTS = 120;
const state = {
  positions: new Map(),  // key -> position (JSON form)
  series: new Map(),     // key -> [mark prices]
  feeds: new Map(),      // name -> feed row
  accounts: [],          // one summary row per account (a session of many)
  account: "",
  filter: new URLSearchParams(location.search).get("account") || "",  // "": every account
  unknownAccounts: {},   // account -> why its positions are not known complete
  loaded: false,         // a snapshot arrived (before it: unknown, never "no positions")
  notable: [],
  unknown: null,         // why positions are not known complete (never synced), or null
  instruments: {},       // "linear:BTCUSDT" -> {tick_size, qty_step, settle_coin}
  offsetMs: 0,           // browser clock minus server clock
  dirty: true,
};

const $ = (id) => document.getElementById(id);
const posKey = (p) => `${p.account || ""}|${p.category}:${p.symbol}:${p.position_idx}`;
const feedKey = (f) => `${f.account || ""}/${f.feed}`;
const multi = () => (state.accounts || []).length > 1;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function serverNowMs() { return Date.now() - state.offsetMs; }

function age(ns) {
  if (!ns) return "-";
  const s = Math.max(0, (serverNowMs() - ns / 1e6) / 1000);
  if (s < 10) return s.toFixed(1) + "s";
  if (s < 3600) return s < 60 ? Math.round(s) + "s" : Math.round(s / 60) + "m";
  return (s / 3600).toFixed(1) + "h";
}

function addMark(key, price) {
  if (price === null || price === undefined) return;
  const v = Number(price);
  if (!Number.isFinite(v)) return;
  let s = state.series.get(key);
  if (!s) { s = []; state.series.set(key, s); }
  if (s.length && s[s.length - 1] === v && s.length > 1) return;
  s.push(v);
  if (s.length > POINTS) s.shift();
}

// One SVG per row, created once; each update only moves its line.
function drawSpark(td, values) {
  const w = 120, h = 26;
  let svg = td.firstElementChild;
  if (!svg) {
    svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", w);
    svg.setAttribute("height", h);
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.appendChild(document.createElementNS(SVG, "polyline"));
    td.appendChild(svg);
  }
  const line = svg.firstElementChild;
  if (!values || values.length < 2) { line.setAttribute("points", ""); return; }
  const lo = Math.min(...values), hi = Math.max(...values);
  const span = hi - lo || 1;
  const pts = values.map((v, i) => {
    const x = (i / (values.length - 1)) * (w - 2) + 1;
    const y = h - 2 - ((v - lo) / span) * (h - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("stroke", values[values.length - 1] >= values[0] ? "#1a7f37" : "#c0392b");
}

// Rows are keyed and updated in place, so a moving price never redraws the table
// (text stays selectable, nothing flickers).
function syncRows(body, items, keyOf, build, update) {
  const seen = new Set();
  let prev = null;
  for (const item of items) {
    const key = keyOf(item);
    seen.add(key);
    let tr = body.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
    if (!tr) { tr = build(item); tr.dataset.key = key; }
    update(tr, item);
    const want = prev ? prev.nextSibling : body.firstChild;
    if (want !== tr) body.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of [...body.children]) if (!seen.has(tr.dataset.key)) tr.remove();
}

function setCell(tr, cls, text, extra) {
  const td = tr.querySelector("td." + cls.split(" ")[0]);
  const value = text === null || text === undefined ? "-" : String(text);
  if (td.textContent !== value) td.textContent = value;
  const want = cls + (extra ? " " + extra : "");
  if (td.className !== want) td.className = want;
}

const POS_CELLS = ["account", "symbol", "side", "size num", "entry num", "mark num", "pnl num", "lev num",
                   "liq num", "age num", "spark", "feed"];

function renderPositions() {
  const body = $("positions").tBodies[0];
  const rows = [...state.positions.values()].sort((a, b) =>
    (a.account || "").localeCompare(b.account || "") || a.symbol.localeCompare(b.symbol)
    || a.position_idx - b.position_idx);
  const note = $("positions-unknown");
  const unknown = state.loaded ? state.unknown : "waiting for the monitor";
  note.textContent = unknown ? `positions unknown: ${unknown}` : "";
  note.hidden = !unknown;
  if (!rows.length) {
    $("positions").tFoot.replaceChildren();
    const tr = el("tr", null, unknown ? "empty unknown" : "empty");
    tr.dataset.key = unknown ? "unknown" : "empty";
    const td = el("td", unknown ? "positions unknown" + (state.loaded ? " (not synced yet)" : "")
      : "no open positions");
    td.colSpan = POS_CELLS.length;
    tr.appendChild(td);
    body.replaceChildren(tr);
    return;
  }
  syncRows(body, rows, posKey, (p) => {
    const tr = el("tr");
    tr.dataset.symbol = p.symbol;
    for (const cls of POS_CELLS) tr.appendChild(el("td", null, cls));
    return tr;
  }, (tr, p) => {
    const pnl = p.unrealised_pnl;
    const ageNs = p.mark_received_ns || p.received_ns;
    setCell(tr, "account", p.account || "");
    setCell(tr, "symbol", p.symbol);
    setCell(tr, "side", p.side, p.side);
    const inst = state.instruments[`${p.category}:${p.symbol}`] || {};
    setCell(tr, "size num", onStep(p.size, inst.qty_step));
    setCell(tr, "entry num", onStep(p.entry_price, inst.tick_size));
    setCell(tr, "mark num", onStep(p.mark_price, inst.tick_size));
    setCell(tr, "pnl num", pnlText(pnl, inst.settle_coin),
            pnl === null ? "" : String(pnl).startsWith("-") ? "down" : "up");
    setCell(tr, "lev num", p.leverage === null || p.leverage === undefined ? "-" : `${p.leverage}x`);
    setCell(tr, "liq num", onStep(p.liq_price, inst.tick_size));
    setCell(tr, "age num", age(ageNs));
    setCell(tr, "feed", p.feed);
    tr.querySelector("td.age").dataset.ns = ageNs || "";
    drawSpark(tr.querySelector("td.spark"), state.series.get(posKey(p)));
  });
  renderTotals(rows);
}

// one total uPnL per settle coin (never mixing coins; unknown coins left out)
function renderTotals(rows) {
  const foot = $("positions").tFoot;
  const totals = new Map();
  for (const p of rows) {
    const coin = (state.instruments[`${p.category}:${p.symbol}`] || {}).settle_coin;
    if (!coin || p.unrealised_pnl === null || p.unrealised_pnl === undefined) continue;
    totals.set(coin, (totals.get(coin) || 0) + Number(p.unrealised_pnl));
  }
  const trs = [...totals.entries()].sort().map(([coin, total]) => {
    const tr = el("tr", null, "total");
    tr.dataset.coin = coin;
    for (const cls of POS_CELLS) tr.appendChild(el("td", null, cls));
    tr.querySelector("td.symbol").textContent = "total";
    const td = tr.querySelector("td.pnl");
    td.textContent = pnlText(total, coin);
    td.className = "pnl num " + (total < 0 ? "down" : "up");
    return tr;
  });
  foot.replaceChildren(...trs);
}

// amounts as the exchange shows them (framework/monitor/amounts.py does the same)
const CENT_COINS = new Set(["USDT", "USDC", "USD", "DAI", "FDUSD", "BUSD"]);
function decimalsOf(step) {
  const s = String(step), i = s.indexOf(".");
  return i < 0 ? 0 : Math.max(0, s.replace(/0+$/, "").length - i - 1);
}
function onStep(v, step) {
  if (v === null || v === undefined || v === "") return "-";
  if (!step || !(Number(step) > 0)) return String(v);
  return (Math.round(Number(v) / Number(step)) * Number(step)).toFixed(decimalsOf(step));
}
function pnlText(v, coin) {
  if (v === null || v === undefined || v === "") return "-";
  if (!coin) return String(v);
  return Number(v).toFixed(CENT_COINS.has(coin.toUpperCase()) ? 2 : 8) + " " + coin;
}

function fmt(v, digits) { return v === null || v === undefined ? "-" : Number(v).toFixed(digits); }

const FEED_CELLS = ["account", "name", "role", "kind", "state", "rate num", "p50 num", "p99 num",
                    "reconnects num", "detail dim"];

function renderFeeds() {
  const body = $("feeds").tBodies[0];
  const feeds = [...state.feeds.values()].sort((a, b) =>
    (a.state === "healthy") - (b.state === "healthy") || feedKey(a).localeCompare(feedKey(b)));
  syncRows(body, feeds, feedKey, (f) => {
    const tr = el("tr");
    tr.dataset.feed = f.feed;
    for (const cls of FEED_CELLS) tr.appendChild(el("td", null, cls));
    return tr;
  }, (tr, f) => {
    let detail = f.detail || "";
    if (f.stale_symbols && f.stale_symbols.length) detail += " stale: " + f.stale_symbols.join(",");
    // the delivering feed's dot is green only while it is healthy
    setCell(tr, "account", f.account || "");
    setCell(tr, "name", f.feed, f.active ? (f.state === "healthy" ? "active" : "active down") : "");
    setCell(tr, "role", f.role);
    setCell(tr, "kind", f.kind);
    setCell(tr, "state", f.state, "state-" + f.state);
    setCell(tr, "rate num", fmt(f.rate, 1));
    setCell(tr, "p50 num", fmt(f.latency_ms_p50, 1));
    setCell(tr, "p99 num", fmt(f.latency_ms_p99, 1));
    setCell(tr, "reconnects num", f.reconnects);
    setCell(tr, "detail dim", detail.trim());
  });
}

// many accounts: one row each (failed first), a filter; the positions and feeds below
// are every account's, or the filtered one's
function renderAccounts() {
  const rows = state.accounts || [];
  document.body.classList.toggle("multi", rows.length > 1);
  $("accounts-section").hidden = rows.length <= 1;
  $("positions-title").textContent = rows.length <= 1 ? "Positions"
    : state.filter ? `Positions of ${state.filter}` : `Positions of every account`;
  $("feeds-title").textContent = rows.length <= 1 ? "Feeds"
    : state.filter ? `Feeds of ${state.filter}` : `Feeds of every account`;
  if (rows.length <= 1) return;
  renderFilter(rows);
  const failed = rows.filter((r) => r.failed).length;
  const healthy = rows.filter((r) => r.state === "healthy").length;
  $("accounts-title").textContent = `Accounts: ${rows.length} (${healthy} healthy, ${failed} failed)`;
  const sorted = [...rows].sort((a, b) => (b.failed - a.failed)
    || ((a.state === "healthy") - (b.state === "healthy")) || a.account.localeCompare(b.account));
  syncRows($("accounts").tBodies[0], sorted, (r) => r.account, () => {
    const tr = el("tr");
    tr.addEventListener("click", () => setFilter(tr.dataset.key));
    for (const cls of ["account", "exchange", "feed", "state", "positions num", "stale num", "detail dim"]) {
      tr.appendChild(el("td", null, cls));
    }
    return tr;
  }, (tr, r) => {
    setCell(tr, "account", r.account);
    tr.classList.toggle("selected", r.account === state.filter);
    setCell(tr, "exchange", r.exchange || "");
    setCell(tr, "feed", r.active || "-");
    setCell(tr, "state", r.state, "state-" + r.state);
    // null: not known (never synced) - never shown as 0
    setCell(tr, "positions num", r.positions === null || r.positions === undefined ? "unknown"
      : String(r.positions), r.positions === null || r.positions === undefined ? "unknown" : "");
    setCell(tr, "stale num", String(r.stale_symbols), r.stale_symbols ? "warn" : "");
    setCell(tr, "detail dim", r.detail || "");
  });
}

function renderFilter(rows) {
  const sel = $("account-filter");
  const names = rows.map((r) => r.account).sort();
  const want = ["", ...names];
  if ([...sel.options].map((o) => o.value).join("\n") !== want.join("\n")) {
    sel.replaceChildren(...want.map((n) => {
      const o = el("option", n ? n : `every account (${names.length})`);
      o.value = n;
      return o;
    }));
  }
  if (sel.value !== state.filter) sel.value = state.filter;
}

// the filter is the page's ?account= and the stream's: the server sends that account only
function setFilter(name) {
  if ((name || "") === state.filter) return;
  state.filter = name || "";
  const url = new URL(location.href);
  if (state.filter) url.searchParams.set("account", state.filter);
  else url.searchParams.delete("account");
  history.replaceState(null, "", url);
  connect();
}

function renderValidation(v) {
  const p = $("validation");
  if (multi() && !state.filter) {  // a validation is one account's: choose the account
    p.textContent = "Validation: per account (choose one above)";
    p.className = "dim";
    return;
  }
  if (v === null || v === undefined) {
    p.textContent = "Validation: no shadow feed is validated";
    p.className = "dim";
    return;
  }
  const pairs = [];
  const pick = (d) => (typeof d.agreement_ratio === "number" ? d.agreement_ratio
    : typeof d.agreement === "number" ? d.agreement : null);
  if (pick(v) !== null) pairs.push([v.shadow || "shadow", pick(v)]);
  else {
    const inner = v.shadows || v;
    for (const [k, d] of Object.entries(inner)) {
      if (d && typeof d === "object" && pick(d) !== null) pairs.push([k, pick(d)]);
    }
  }
  p.className = "";
  const full = (k) => v[k] && typeof v[k] === "object" && "agreeing" in v[k] ? v[k] : null;
  p.textContent = "Validation: " + (pairs.length
    ? pairs.map(([k, r]) => full(k) ? describeReport(full(k))
      : `${k} agrees ${(r * 100).toFixed(1)}%`).join(" | ")
    : JSON.stringify(v));
}

// one readable line per shadow (framework/validator.py describe_report does the same)
function describeReport(r) {
  const n = (x, d, unit) => (x === null || x === undefined ? "-" : Number(x).toFixed(d) + unit);
  const total = (r.agreeing || 0) + (r.disagreeing || 0);
  const head = `${r.shadow} vs ${r.primary}: agrees ${n(r.agreement === null ? null : 100 * r.agreement, 1, "%")}`
    + ` (${r.agreeing || 0}/${total} position samples over ${r.window_seconds}s, ${r.pending || 0} pending)`;
  const mark = `mark Δ p50 ${n(r.mark_deviation_bps_p50, 2, " bps")}, max ${n(r.mark_deviation_bps_max, 2, " bps")}`;
  const lead = r.lead_ms_p50 === null || r.lead_ms_p50 === undefined ? "-"
    : (r.lead_ms_p50 >= 0 ? "+" : "") + r.lead_ms_p50.toFixed(0) + " ms";
  const first = `first: primary ${r.primary_first || 0}, shadow ${r.shadow_first || 0} of ${r.changes_matched || 0} changes, median lead ${lead}`;
  const differ = (r.current || []).filter((d) => d.settled !== false);
  const now = differ.length ? "now differ: " + differ.slice(0, 3).map((d) =>
    `${d.position.split(":")[1] || d.position} ${d.field} ${d.primary}≠${d.shadow} (${d.for_seconds.toFixed(1)}s)`).join(", ")
    : "no difference now";
  return [head, mark, first, now].join(" · ");
}

function renderNotable() {
  const ul = $("notable");
  ul.replaceChildren();
  if (!state.notable.length) { ul.appendChild(el("li", "none yet", "dim")); return; }
  for (const n of state.notable.slice(-12).reverse()) {
    const li = el("li");
    li.append(el("span", new Date(n.at_ns / 1e6 + state.offsetMs).toLocaleTimeString() + "  ", "dim"),
              el("span", n.text));
    ul.appendChild(li);
  }
}

function setClock(nowNs) { if (nowNs) state.offsetMs = Date.now() - nowNs / 1e6; }

function onPosition(ev) {
  if (ev.past) return;  // a recovered lifecycle that ended earlier: the table is current state
  const p = ev.position, key = posKey(p);
  const known = state.positions.get(key);
  if (known && known.lifecycle > p.lifecycle) return;  // an older lifecycle, already replaced
  if (ev.kind === "closed") {
    if (!known || known.lifecycle === p.lifecycle) {
      state.positions.delete(key);
      state.series.delete(key);
    }
  } else {
    if (known && known.lifecycle !== p.lifecycle) state.series.delete(key);
    state.positions.set(key, p);
    addMark(key, p.mark_price);
  }
}

function onStatus(ev) {
  const f = state.feeds.get(`${ev.account || ""}/${ev.feed}`) || state.feeds.get(`/${ev.feed}`);
  if (f) { f.state = ev.status.state; f.detail = ev.status.detail; f.reconnects = ev.status.reconnects; }
}

let source = null;
function connect() {
  if (source) source.close();
  state.positions = new Map();
  state.series = new Map();
  state.loaded = false;
  state.dirty = true;
  const es = source = new EventSource(
    "/api/events" + (state.filter ? "?account=" + encodeURIComponent(state.filter) : ""));
  const on = (name, fn) => es.addEventListener(name, (m) => {
    fn(JSON.parse(m.data));
    state.dirty = true;
  });
  es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn live"; };
  es.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn down"; };
  on("snapshot", (s) => {
    setClock(s.now_ns);
    state.loaded = true;
    $("session").textContent = (s.accounts || []).length > 1 && !s.filter
      ? `profile ${s.profile} · mode ${s.mode} · ${s.accounts.length} accounts`
      : `profile ${s.profile} · mode ${s.mode} · ${s.filter ? "account " + s.filter + " · " : ""}active ${s.router ? s.router.active : "-"}`;
    const series = state.series;
    state.positions = new Map();
    for (const p of s.positions) state.positions.set(posKey(p), p);
    for (const k of [...series.keys()]) if (!state.positions.has(k)) series.delete(k);
    for (const p of s.positions) addMark(posKey(p), p.mark_price);
    state.feeds = new Map(s.feeds.map((f) => [feedKey(f), f]));
    state.notable = s.notable || [];
    state.unknown = s.positions_unknown || null;
    state.unknownAccounts = s.accounts_unknown || {};
    state.instruments = s.instruments || {};
    state.accounts = s.accounts || [];
    state.account = s.account || "";
    renderValidation(s.validation);
  });
  on("position", onPosition);
  on("status", onStatus);
  on("route", (r) => {
    state.notable.push({ text: `route ${r.previous} -> ${r.active}: ${r.reason}`, at_ns: r.at_ns });
  });
  on("signal", (s) => { if (s.type === "trailing_stop") state.notable.push(s); });
  on("feeds", (t) => {
    setClock(t.now_ns);
    state.feeds = new Map(t.feeds.map((f) => [feedKey(f), f]));
    state.unknown = t.positions_unknown || null;
    state.unknownAccounts = t.accounts_unknown || {};
    state.instruments = t.instruments || state.instruments;
    state.accounts = t.accounts || [];
    state.account = t.account || state.account;
    renderValidation(t.validation);
    if (t.router && / active /.test($("session").textContent)) $("session").textContent = $("session").textContent.replace(/active .*$/, "active " + t.router.active);
  });
}

function frame() {
  if (state.dirty) {
    state.dirty = false;
    renderPositions();
    renderFeeds();
    renderAccounts();
    renderNotable();
  }
  requestAnimationFrame(frame);
}

setInterval(() => {
  for (const td of document.querySelectorAll("#positions tbody td.age")) {
    td.textContent = age(Number(td.dataset.ns) || 0);
  }
}, 1000);

$("account-filter").addEventListener("change", (e) => setFilter(e.target.value));
connect();
requestAnimationFrame(frame);
