// The ops page: the compartments drawn as the bank is built (columns and levels from the config),
// the open alarms with their severity, time and acknowledgement, the zone temperatures against
// their limits, the events (filtered), and the technician's actions, kept live by the
// server-sent event stream (read with fetch, so the token travels in a header and never in a
// URL). Dates and times are the locker's own: its locale and time zone; its words in English
// or French (ops-text.json), French first on a French locker.
"use strict";
let token = sessionStorage.getItem("opsToken"), selected = null, state = null, pending = null;
let TEXT = null, lang = "en", shownEvents = 30, dates = null, hours = null;
const EVENTS_STEP = 30;
const $ = (id) => document.getElementById(id);
const headers = () => ({"X-Ops-Token": token, "Content-Type": "application/json"});
const words = (key) => key.split(".").reduce((o, k) => (o == null ? o : o[k]), TEXT[lang]);
const t = (key, vars = {}) => String(words(key) ?? key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
const zoneWords = (z) => state?.bank?.zones?.[z]?.[lang] || z;  // the app's declarations
const when = (at) => (at ? dates.format(new Date(at * 1000)) : "");
const el = (name, attrs = {}, text) => {
  const node = document.createElement(name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
};

function setLang(next) {
  lang = next;
  document.documentElement.lang = next;
  document.querySelectorAll("[data-t]").forEach((e) => { e.textContent = t(e.dataset.t); });
  document.querySelectorAll("[data-t-label]").forEach((e) => e.setAttribute("aria-label", t(e.dataset.tLabel)));
  for (const l of ["en", "fr"]) $(`lang-${l}`).setAttribute("aria-pressed", String(l === lang));
  if (state) render();
}
function learnDates() {  // the locker's locale and time zone, whatever the browser's are
  const options = {timeZone: state.time_zone};
  dates = new Intl.DateTimeFormat(state.locale, {...options, dateStyle: "short", timeStyle: "medium"});
  hours = new Intl.DateTimeFormat(state.locale, {...options, hour: "2-digit", minute: "2-digit"});
}
async function load() {
  const r = await fetch("/api/ops/state", {headers: headers()});
  if (r.status === 401 || r.status === 503) {
    $("auth-answer").textContent = (await r.json()).message; $("board").hidden = true; return false;
  }
  const first = state === null;
  state = await r.json();
  learnDates();
  if (first && state.locale.startsWith("fr") && lang !== "fr") setLang("fr");
  render();
  return true;
}
function render() {
  $("title").textContent = `${state.name} (${state.locker})`;
  const c = state.central;
  $("central").textContent = !c ? "" : c.reachable ? t("central_ok", {n: c.outbox})
    : t("central_down", {at: when(c.outage_since), n: c.outbox});
  $("central").className = !c || c.reachable ? "muted" : "bad";
  renderGrid();
  renderSelected();
  renderAlarms();
  renderEvents();
  renderTemps();
}
// the bank as built: one column a column, level 1 at the bottom, all on one row
function renderGrid() {
  const grid = $("grid"); grid.textContent = "";
  grid.style.gridTemplateColumns = `repeat(${state.bank.columns}, minmax(0, 1fr))`;
  for (const c of state.compartments) {
    const cell = el("div", {class: `cell ${c.zone} ${c.state} door-${c.door}` + (c.id === selected ? " selected" : ""),
                            role: "button", tabindex: "0", "aria-pressed": String(c.id === selected),
                            "data-id": c.id, "data-door": c.door, "data-state": c.state});
    cell.style.gridColumn = String(c.column);
    cell.style.gridRow = String(state.bank.levels - c.level + 1);
    cell.append(el("b", {}, c.id), el("span", {}, `${c.size} ${t(`states.${c.state}`)}`),
                el("span", {class: c.door === "unknown" ? "bad" : ""},
                   c.door === "unknown" ? t("door_unknown") : t("door", {door: t(`doors.${c.door}`)})
                   + (c.order ? ` · ${c.order}` : "") + (c.holds_return ? ` · ${t("holds_return")}` : "")));
    if (c.service_reason) cell.append(el("span", {class: "reason"}, c.service_reason));
    const pick = () => { selected = c.id; render(); $("grid").querySelector(`[data-id="${c.id}"]`).focus(); };
    cell.addEventListener("click", pick);
    cell.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); }
    });
    grid.appendChild(cell);
  }
}
function renderSelected() {
  const c = state.compartments.find((x) => x.id === selected);
  $("selected").textContent = c ? t("compartment", {id: c.id}) : t("select");
  $("selected-detail").textContent = !c ? "" : [
    zoneWords(c.zone), c.wired, t(`states.${c.state}`),
    c.door === "unknown" ? t("door_unknown") : t("door", {door: t(`doors.${c.door}`)}),
    c.service_reason ? t("out_of_service", {reason: c.service_reason}) : ""].filter(Boolean).join(" · ");
}
function renderAlarms() {
  const list = $("alarms"); list.textContent = "";
  const severity = $("alarm-filter").value;
  const shown = state.alarms.filter((a) => !severity || a.severity === severity);
  for (const a of shown) {
    const li = el("li", {class: `alarm ${a.severity} ${a.state}`, "data-kind": a.kind,
                         "data-id": a.id ?? "", "data-state": a.state});
    const kind = state.alarm_kinds[a.kind];
    li.append(el("span", {class: `badge ${a.severity}`}, t(a.severity)),
              el("b", {}, `${a.kind} ${a.subject}`),
              el("span", {}, ` ${kind ? kind[lang] : ""}: ${a.message}`),
              el("span", {class: "muted when"}, ` · ${t("raised", {at: when(a.raised_at)})}`
                 + (a.cleared_at ? ` · ${t("cleared", {at: when(a.cleared_at)})}` : "")
                 + ` · ${t(a.state)}` + (a.security ? ` · ${t("security")}` : "")));
    if (a.acked_at) {
      li.append(el("span", {class: "muted"}, ` · ${t("acked", {by: a.acked_by, note: a.ack_note})}`));
    } else if (a.id !== null) {
      const form = el("form", {class: "ack"});
      const note = el("input", {size: "28", "aria-label": t("ack_note"), placeholder: t("ack_note")});
      note.addEventListener("input", () => note.setCustomValidity(""));
      form.append(note, el("button", {type: "submit"}, t("ack")));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const r = await fetch(`/api/ops/alarms/${a.id}/ack`, {method: "POST", headers: headers(),
                                                              body: JSON.stringify({note: note.value})});
        if (!r.ok) { note.setCustomValidity((await r.json()).message); note.reportValidity(); return; }
        load();
      });
      li.append(form);
    }
    list.appendChild(li);
  }
  if (!shown.length) list.appendChild(el("li", {class: "good"}, t("no_alarms")));
}
function renderEvents() {
  const kind = $("event-kind").value, text = $("event-text").value.trim();
  const matching = state.events.filter((e) => (!kind || e.kind.startsWith(kind)) && (!text ||
    [e.compartment_id, e.order_id, e.subject].some((v) => v && String(v).includes(text))));
  const events = $("events"); events.textContent = "";
  for (const e of matching.slice(0, shownEvents)) {
    const tr = el("tr");
    for (const cell of [when(e.at), e.kind, e.compartment_id || e.order_id || e.subject || "",
                        e.actor ? `${e.actor}` : ""]) {
      tr.appendChild(el("td", {}, cell));
    }
    events.appendChild(tr);
  }
  $("more").hidden = matching.length <= shownEvents;
  $("event-count").textContent = t("shown", {n: Math.min(shownEvents, matching.length), total: matching.length});
}
function renderTemps() {
  const temps = $("temps"); temps.textContent = "";
  const zones = Object.keys(state.temperatures);
  if (!zones.length) { temps.appendChild(el("p", {class: "muted"}, t("no_record"))); return; }
  const svgNS = "http://www.w3.org/2000/svg", svg = document.createElementNS(svgNS, "svg");
  const add = (name, attrs, text) => {
    const node = document.createElementNS(svgNS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node); return node;
  };
  // the axes fit the record and the zones' limits: from its first reading to now
  const W = 1000, H = 260, L = 60, B = 30, now = Date.now() / 1000;
  const readings = zones.flatMap((z) => state.temperatures[z].filter(([, c]) => c !== null));
  const limits = zones.flatMap((z) => [state.zones[z]?.min_c, state.zones[z]?.max_c]).filter((v) => v != null);
  const first = Math.min(now - 600, ...readings.map(([r]) => r));
  const values = [...readings.map(([, c]) => c), ...limits];
  const lo = Math.floor(Math.min(...values) / 5) * 5 - 5;
  const hi = Math.ceil(Math.max(...values) / 5) * 5 + 5;
  const x = (s) => (L + (s - first) / (now - first) * (W - L - 10)).toFixed(1);
  const y = (c) => (10 + (hi - c) / (hi - lo) * (H - B - 10)).toFixed(1);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", t("temperatures"));
  const colours = Object.fromEntries(Object.entries(state.bank.zones).map(([z, d]) => [z, d.colour]));
  // defrosts shaded, under everything else
  for (const zone of zones) {
    const rows = state.temperatures[zone];
    rows.forEach(([at, , defrosting], i) => {
      if (!defrosting) return;
      const end = rows[i + 1] ? rows[i + 1][0] : now;
      add("rect", {x: x(at), y: 10, width: Math.max(1, x(end) - x(at)), height: H - B - 10,
                   class: "defrost", "data-zone": zone});
    });
  }
  const step = hi - lo > 30 ? 10 : 5;
  for (let c = lo; c <= hi; c += step) {
    add("line", {x1: L, x2: W - 10, y1: y(c), y2: y(c), class: "grid"});
    add("text", {x: L - 8, y: Number(y(c)) + 6, class: "axis", "text-anchor": "end"}, `${c} °C`);
  }
  for (let i = 0; i <= 4; i += 1) {
    const s = first + (now - first) * i / 4;
    add("text", {x: x(s), y: H - 6, class: "axis", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle"},
        hours.format(new Date(s * 1000)));
  }
  for (const zone of zones) {  // each zone's limits as dashed lines of its colour
    for (const c of [state.zones[zone]?.min_c, state.zones[zone]?.max_c]) {
      if (c == null) continue;
      const line = add("line", {x1: L, x2: W - 10, y1: y(c), y2: y(c), class: "limit", "data-zone": zone});
      line.style.stroke = colours[zone] || "#fff";
      add("text", {x: W - 14, y: Number(y(c)) - 4, class: "axis limit-label", "text-anchor": "end"},
          `${zoneWords(zone)} ${t("limit", {c})}`);
    }
  }
  for (const zone of zones) {
    const points = state.temperatures[zone].filter(([, c]) => c !== null).map(([s, c]) => `${x(s)},${y(c)}`).join(" ");
    const line = add("polyline", {points, fill: "none", "stroke-width": "3"});
    line.style.stroke = colours[zone] || "#fff";
    line.dataset.zone = zone;
  }
  for (const zone of Object.keys(state.bank.zones)) {  // every zone named, measured or not
    const rows = state.temperatures[zone];
    const last = rows && rows.at(-1);
    const label = el("span", {class: "zone-now", "data-zone": zone},
                     `${zoneWords(zone)}: ${!last ? t("not_monitored") : last[1] === null
                       ? t("probe_fault") : last[1].toFixed(1) + " °C"}  `);
    label.style.color = colours[zone];
    temps.appendChild(label);
  }
  temps.appendChild(el("span", {class: "zone-now defrost-key"}, t("defrost")));
  temps.appendChild(svg);
}
async function stream() {
  while (token) {
    try {
      const r = await fetch("/api/ops/stream", {headers: headers()});
      if (!r.ok) return;
      $("live").textContent = t("live"); $("live").className = "good"; $("live").dataset.t = "live";
      const reader = r.body.getReader(), decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        if (buffer.includes("data:")) { clearTimeout(pending); pending = setTimeout(load, 100); }
        buffer = buffer.slice(buffer.lastIndexOf("\n\n") + 1);
      }
    } catch (e) { /* the daemon restarted or the network blinked: reconnect */ }
    $("live").textContent = t("reconnecting"); $("live").className = "bad"; $("live").dataset.t = "reconnecting";
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}
async function act(path, body) {
  const r = await fetch(path, {method: "POST", headers: headers(), body: JSON.stringify(body)});
  const data = await r.json();
  $("action-answer").className = r.ok ? "good" : "bad";
  $("action-answer").textContent = r.ok ? t("done") : data.message;
}
$("open").addEventListener("click", () => selected &&
  act(`/api/ops/compartments/${selected}/open`, {reason: $("reason").value}));
$("service").addEventListener("click", () => {
  if (!selected) return;
  const c = state.compartments.find((x) => x.id === selected);
  act(`/api/ops/compartments/${selected}/service`,
      {in_service: c.state === "out_of_service", reason: $("reason").value});
});
$("auth").addEventListener("submit", async (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  start();
});
$("lang-en").addEventListener("click", () => setLang("en"));
$("lang-fr").addEventListener("click", () => setLang("fr"));
$("alarm-filter").addEventListener("change", () => state && renderAlarms());
$("event-kind").addEventListener("change", () => { shownEvents = EVENTS_STEP; if (state) renderEvents(); });
$("event-text").addEventListener("input", () => { shownEvents = EVENTS_STEP; if (state) renderEvents(); });
$("more").addEventListener("click", () => { shownEvents += EVENTS_STEP; renderEvents(); });
async function start() {
  if (!token) return;
  if (await load()) {
    sessionStorage.setItem("opsToken", token);
    $("auth").hidden = true; $("board").hidden = false;
    stream();
  }
}
fetch("/static/ops-text.json").then((r) => r.json()).then((text) => {
  TEXT = text;
  setLang("en");
  start();
});
