// The ops page: the compartments as a grid, alarms, events, zone temperatures, and the
// technician's actions, kept live by the server-sent event stream (read with fetch, so the token
// travels in a header and never in a URL).
"use strict";
let token = sessionStorage.getItem("opsToken"), selected = null, state = null, pending = null;
const $ = (id) => document.getElementById(id);
const headers = () => ({"X-Ops-Token": token, "Content-Type": "application/json"});

async function load() {
  const r = await fetch("/api/ops/state", {headers: headers()});
  if (r.status === 401 || r.status === 503) {
    $("auth-answer").textContent = (await r.json()).message; $("board").hidden = true; return false;
  }
  state = await r.json();
  render();
  return true;
}
function render() {
  $("title").textContent = `${state.name} (${state.locker})`;
  const c = state.central;
  $("central").textContent = !c ? "" : c.reachable
    ? `central: in touch · ${c.outbox} events waiting`
    : `central: unreachable since ${new Date(c.outage_since * 1000).toLocaleString()} · ${c.outbox} events waiting`;
  $("central").className = !c || c.reachable ? "muted" : "bad";
  const grid = $("grid"); grid.textContent = "";
  const columns = new Map();
  for (const c of state.compartments) {
    if (!columns.has(c.column)) columns.set(c.column, []);
    columns.get(c.column).push(c);
  }
  for (const col of [...columns.keys()].sort((a, b) => a - b)) {
    const div = document.createElement("div"); div.className = "column";
    for (const c of columns.get(col).sort((a, b) => a.level - b.level)) {
      const cell = document.createElement("div");
      cell.className = `cell ${c.zone} ${c.state} door-${c.door}` + (c.id === selected ? " selected" : "");
      cell.dataset.id = c.id; cell.dataset.door = c.door; cell.dataset.state = c.state;
      cell.innerHTML = `<b></b><br><span></span><br><span></span>`;
      cell.children[0].textContent = c.id;
      cell.children[2].textContent = `${c.size} ${c.state.replace(/_/g, " ")}`;
      cell.children[4].textContent = `door ${c.door}` + (c.order ? ` · ${c.order}` : "");
      cell.title = `${c.zone}, ${c.wired}` + (c.service_reason ? `, ${c.service_reason}` : "");
      cell.addEventListener("click", () => { selected = c.id; render(); });
      div.appendChild(cell);
    }
    grid.appendChild(div);
  }
  $("selected").textContent = selected ? `Compartment ${selected}` : "Select a compartment.";
  const alarms = $("alarms"); alarms.textContent = "";
  for (const a of state.alarms) {
    const li = document.createElement("li"); li.className = "bad";
    li.textContent = `${a.kind} ${a.subject}: ${a.message}`; alarms.appendChild(li);
  }
  if (!state.alarms.length) alarms.innerHTML = '<li class="good">none</li>';
  const events = $("events"); events.textContent = "";
  for (const e of state.events) {
    const tr = document.createElement("tr");
    const when = new Date(e.at * 1000).toLocaleTimeString();
    const who = e.actor ? ` by ${e.actor}` : "";
    for (const text of [when, e.kind, e.compartment_id || e.order_id || e.subject || "", who]) {
      const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
    }
    events.appendChild(tr);
  }
  renderTemps();
}
function renderTemps() {
  const temps = $("temps"); temps.textContent = "";
  const zones = Object.keys(state.temperatures);
  if (!zones.length) { temps.innerHTML = '<p class="muted">No temperature record on this locker yet.</p>'; return; }
  const svgNS = "http://www.w3.org/2000/svg", svg = document.createElementNS(svgNS, "svg");
  const add = (name, attrs, text) => {
    const node = document.createElementNS(svgNS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node); return node;
  };
  // the axes fit the record: from its first reading to now, whole 5 °C steps around it
  const W = 1000, H = 260, L = 60, B = 30, now = Date.now() / 1000;
  const readings = zones.flatMap((z) => state.temperatures[z].filter(([, c]) => c !== null));
  const first = Math.min(now - 600, ...readings.map(([t]) => t));
  const lo = Math.floor(Math.min(...readings.map(([, c]) => c)) / 5) * 5 - 5;
  const hi = Math.ceil(Math.max(...readings.map(([, c]) => c)) / 5) * 5 + 5;
  const x = (t) => (L + (t - first) / (now - first) * (W - L - 10)).toFixed(1);
  const y = (c) => (10 + (hi - c) / (hi - lo) * (H - B - 10)).toFixed(1);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "zone temperatures over time");
  const step = hi - lo > 30 ? 10 : 5;
  for (let c = lo; c <= hi; c += step) {
    add("line", {x1: L, x2: W - 10, y1: y(c), y2: y(c), class: "grid"});
    add("text", {x: L - 8, y: Number(y(c)) + 6, class: "axis", "text-anchor": "end"}, `${c} °C`);
  }
  for (let i = 0; i <= 4; i += 1) {
    const t = first + (now - first) * i / 4;
    add("text", {x: x(t), y: H - 6, class: "axis", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle"},
        new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}));
  }
  const colours = {ambient: "#9e9e9e", fresh: "#4fc3ff", frozen: "#b388ff"};
  for (const zone of zones) {
    const points = state.temperatures[zone].filter(([, c]) => c !== null).map(([t, c]) => `${x(t)},${y(c)}`).join(" ");
    const line = add("polyline", {points, fill: "none", stroke: colours[zone] || "#fff", "stroke-width": "3"});
    line.dataset.zone = zone;
    const last = state.temperatures[zone].at(-1);
    const label = document.createElement("span");
    label.className = "zone-now"; label.dataset.zone = zone;
    label.style.color = colours[zone] || "#fff";
    label.textContent = `${zone}: ${last[1] === null ? "probe fault" : last[1].toFixed(1) + " °C"}  `;
    temps.appendChild(label);
  }
  temps.appendChild(svg);
}
async function stream() {
  while (token) {
    try {
      const r = await fetch("/api/ops/stream", {headers: headers()});
      if (!r.ok) return;
      $("live").textContent = "live"; $("live").className = "good";
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
    $("live").textContent = "reconnecting"; $("live").className = "bad";
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}
async function act(path, body) {
  const r = await fetch(path, {method: "POST", headers: headers(), body: JSON.stringify(body)});
  const data = await r.json();
  $("action-answer").className = r.ok ? "good" : "bad";
  $("action-answer").textContent = r.ok ? "done" : data.message;
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
async function start() {
  if (!token) return;
  if (await load()) {
    sessionStorage.setItem("opsToken", token);
    $("auth").hidden = true; $("board").hidden = false;
    stream();
  }
}
start();
