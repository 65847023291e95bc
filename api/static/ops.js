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
  svg.setAttribute("viewBox", "0 0 1440 200"); svg.setAttribute("preserveAspectRatio", "none");
  const colours = {ambient: "#9e9e9e", fresh: "#4fc3ff", frozen: "#b388ff"}, now = Date.now() / 1000;
  for (const zone of zones) {
    const points = state.temperatures[zone].filter(([, c]) => c !== null).map(([t, c]) =>
      `${Math.round(1440 - (now - t) / 60)},${Math.round(100 - c * 3)}`).join(" ");
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", points); line.setAttribute("fill", "none");
    line.setAttribute("stroke", colours[zone] || "#fff"); line.setAttribute("stroke-width", "3");
    line.dataset.zone = zone;
    svg.appendChild(line);
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
