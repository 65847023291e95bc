// The courier's screen: log in with a TOTP code, load orders (all doors at once or one by one),
// watch each door open and close (on the bank's drawing too), take back expired orders. The server ends idle sessions.
"use strict";
let token = null, watching = null, bank = null;
const $ = (id) => document.getElementById(id);

const LATE = "The locker did not answer in time; nothing was done. Please try again.";
async function call(method, path, body) {
  let r;
  try {
    r = await Ask.send(method, path, body, {Authorization: `Bearer ${token}`});
  } catch (e) {
    if (e.name === "AbortError") return {ok: false, data: {message: LATE}};
    throw e;
  }
  const data = await r.json();
  if (r.status === 401) { loggedOut(data.message); throw new Error(data.message); }
  return {ok: r.ok, data};
}
function loggedOut(message) {
  token = null; clearInterval(watching);
  $("work").hidden = true; $("logout").hidden = true; $("login").hidden = false;
  $("login-answer").textContent = message || "";
}
function row(cells, buttons) {
  const tr = document.createElement("tr");
  for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
  const td = document.createElement("td");
  for (const [label, action] of buttons) {
    const b = document.createElement("button"); b.type = "button"; b.textContent = label;
    b.addEventListener("click", action); td.appendChild(b); td.append(" ");
  }
  tr.appendChild(td);
  return tr;
}
async function refresh() {
  const {data} = await call("GET", "/api/courier/orders");
  const load = $("to-load"), reclaim = $("to-reclaim");
  load.textContent = ""; reclaim.textContent = "";
  for (const o of data.to_load) {
    const bags = o.bags.map((b) => `${b.zone} ${b.size}`).join(", ");
    load.appendChild(row([o.order, bags], [["Open all doors", () => loadOrder(o.order, true)],
                                           ["One by one", () => loadOrder(o.order, false)]]));
  }
  for (const o of data.to_reclaim) {
    reclaim.appendChild(row([o.order, o.compartments.join(", ")],
                            [["Open and take back", () => reclaimOrder(o.order)]]));
  }
}
async function loadOrder(order, together) {
  const {ok, data} = await call("POST", `/api/courier/orders/${order}/load`, {together});
  $("answer").className = ok ? "good" : "bad";
  $("answer").textContent = ok ? "" : data.message;
  if (ok) watch(order);
}
async function reclaimOrder(order) {
  const {ok, data} = await call("POST", `/api/courier/orders/${order}/reclaim`);
  $("answer").className = ok ? "good" : "bad";
  $("answer").textContent = ok ? `Open: ${data.opened.map((d) => d.compartment).join(", ")}` : data.message;
  if (ok) watch(order);
}
function watch(order) {
  clearInterval(watching);
  const show = async () => {
    const {ok, data} = await call("GET", `/api/courier/orders/${order}`);
    if (!ok) return;
    $("progress").hidden = false;
    $("progress-title").textContent = `Order ${order}`;
    const list = $("progress-doors"); list.textContent = "";
    const lit = new Map(data.doors.map((d) => [d.compartment, d.closed ? "closed"
      : d.door === "open" ? "opened" : d.door === "jammed" ? "stuck" : d.door === "unlocking" ? "opening" : "waiting"]));
    Bank.draw($("progress-bank"), bank, lit);
    for (const d of data.doors) {
      const status = d.closed ? "done" : d.door === "open" ? "open: put the goods in, then close"
                   : d.door === "jammed" ? "jammed" : d.door === "unlocking" ? "opening" : "waiting";
      const buttons = (!d.opened && data.state === "allocated" && d.door === "locked")
        ? [["Open", () => call("POST", `/api/courier/orders/${order}/open`, {compartment: d.compartment})]] : [];
      list.appendChild(row([d.compartment, `${d.zone}, ${d.location}`, status], buttons));
    }
    $("progress-state").textContent = `State: ${data.state}`;
    if (["ready", "reclaimed"].includes(data.state)) { clearInterval(watching); refresh(); }
  };
  show();
  watching = setInterval(show, 700);
}
$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  let r;
  try {
    r = await Ask.send("POST", "/api/staff/login",
                       {staff: $("staff").value.trim(), code: $("totp").value.trim(), screen: "courier"});
  } catch (e) { $("login-answer").textContent = LATE; return; }
  const data = await r.json();
  $("totp").value = "";
  if (!r.ok) { $("login-answer").textContent = data.message; return; }
  token = data.token;
  $("login").hidden = true; $("work").hidden = false; $("logout").hidden = false;
  $("hello").textContent = `${data.name} (${data.role})`;
  refresh();
});
$("logout").addEventListener("click", async () => { await call("POST", "/api/staff/logout"); loggedOut(); });
Ask.learn().then((data) => { bank = data.bank; }).catch(() => {});
