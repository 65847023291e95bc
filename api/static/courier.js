// The courier's screen: the orders to load and to take back, and one panel an order under way
// (several at once: a trolley holds more than one order) with each door's outcome live, in words
// and on the bank's drawing: opened, closed, did not unlock, jammed ("A1 jammed: use A2" when
// the locker gave its bags another compartment). An order being loaded here leaves the list
// while it is; one being loaded at another screen stays in it with its buttons off. Where item
// sensors are fitted, a door shut on nothing says "F12 reads empty: put the bag in" with a button
// to open it again, and goods nobody expects (left behind, forgotten) are listed to take out, with
// what customers handed back (returns) beside them.
"use strict";
const t = Staff.t, $ = (id) => document.getElementById(id);
const POLL_MS = 600, LIST_MS = 4000;
const DRAWN = {waiting: "waiting", opening: "opening", open: "opened", closed: "closed",
               did_not_unlock: "stuck", jammed: "stuck"};
let lists = null, listTimer = null;
const watched = new Map();  // order -> {progress, seen, timer}

function el(name, attrs = {}, text) {
  const node = document.createElement(name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function button(label, action, attrs = {}) {
  const b = el("button", {type: "button", ...attrs}, label);
  b.addEventListener("click", action);
  return b;
}
function say(text, good = false) { $("answer").textContent = text; $("answer").className = good ? "good" : "bad"; }
const bags = (list) => list.map((b) => t("bag", {zone: Staff.zone(b.zone), size: b.size})).join(", ");
const underWayHere = (order) => watched.has(order) && !watched.get(order).progress?.result;

async function refreshLists() {
  const {ok, data} = await Staff.call("GET", "/api/courier/orders");
  if (!ok) return;
  lists = data;
  renderLists();
}
function renderLists() {
  if (!lists) return;
  const load = $("to-load"), reclaim = $("to-reclaim");
  load.textContent = ""; reclaim.textContent = "";
  const toLoad = lists.to_load.filter((o) => !underWayHere(o.order));
  for (const o of toLoad) {
    const tr = el("tr", {"data-order": o.order});
    tr.append(el("td", {class: "order"}, o.order), el("td", {}, bags(o.bags)));
    const td = el("td", {class: "actions"});
    const off = o.under_way ? {disabled: ""} : {};
    td.append(button(t("open_all"), () => loadOrder(o.order, true),
                     {...off, "aria-label": t("open_all_label", {order: o.order})}),
              button(t("one_by_one"), () => loadOrder(o.order, false),
                     {...off, class: "secondary", "aria-label": t("one_by_one_label", {order: o.order})}));
    if (o.under_way) td.append(el("span", {class: "muted"}, t("under_way_load")));
    tr.append(td);
    load.append(tr);
  }
  const toReclaim = lists.to_reclaim.filter((o) => !underWayHere(o.order));
  for (const o of toReclaim) {
    const tr = el("tr", {"data-order": o.order});
    tr.append(el("td", {class: "order"}, o.order), el("td", {}, o.compartments.join(", ")));
    const td = el("td", {class: "actions"});
    td.append(button(t("take_back"), () => reclaimOrder(o.order),
                     {...(o.under_way ? {disabled: ""} : {}),
                      "aria-label": t("take_back_label", {order: o.order})}));
    if (o.under_way) td.append(el("span", {class: "muted"}, t("under_way_reclaim")));
    // bags kept back at pickup (their zone left its limits): not to be sold again
    else if (o.state === "withheld") td.append(el("span", {class: "warn"}, t("withheld_reclaim")));
    tr.append(td);
    reclaim.append(tr);
  }
  const goods = $("goods");
  goods.textContent = "";
  for (const g of lists.goods_to_take_back || []) {
    const tr = el("tr", {"data-compartment": g.compartment});
    tr.append(el("td", {}, t("goods_line", {c: g.compartment})));
    const td = el("td", {class: "actions"});
    td.append(button(t("goods_out"), () => takeOut(g.compartment),
                     {...(g.under_way ? {disabled: ""} : {}),
                      "aria-label": t("goods_out_label", {c: g.compartment})}));
    tr.append(td);
    goods.append(tr);
  }
  $("goods-section").hidden = !(lists.goods_to_take_back || []).length;
  // what customers handed back: the drive credits them once a courier has it
  const handed = $("returns");
  handed.textContent = "";
  for (const r of lists.returns_to_take_back || []) {
    const tr = el("tr", {"data-return": r.return, "data-compartment": r.compartment});
    const what = t(`return_kinds.${r.what || "unknown"}`);
    tr.append(el("td", {}, t("return_line", {c: r.compartment, what, order: r.order})));
    const td = el("td", {class: "actions"});
    td.append(button(t("return_out"), () => takeReturn(r.return, r.compartment),
                     {...(r.under_way ? {disabled: ""} : {}),
                      "aria-label": t("return_out_label", {c: r.compartment})}));
    if (r.overdue) td.append(el("span", {class: "warn"}, t("return_overdue")));
    tr.append(td);
    handed.append(tr);
  }
  $("returns-section").hidden = !(lists.returns_to_take_back || []).length;
  $("to-load-empty").hidden = toLoad.length > 0;
  $("to-reclaim-empty").hidden = toReclaim.length > 0;
}

async function loadOrder(order, together) {
  const {ok, data, message} = await Staff.call("POST", `/api/courier/orders/${order}/load`, {together},
                                                 {order});
  if (!ok) { if (message) say(message); refreshLists(); return; }
  say("", true);
  watch(order);
}
async function reclaimOrder(order) {
  const {ok, message} = await Staff.call("POST", `/api/courier/orders/${order}/reclaim`,
                                           undefined, {order});
  if (!ok) { if (message) say(message); refreshLists(); return; }
  say("", true);
  watch(order);
}
async function takeOut(compartment) {
  const {ok, message} = await Staff.call("POST", `/api/courier/compartments/${compartment}/take_back`,
                                           undefined, {compartment});
  if (!ok) { if (message) say(message); } else say(t("goods_out_open", {c: compartment}), true);
  refreshLists();
}
async function takeReturn(id, compartment) {
  const {ok, message} = await Staff.call("POST", `/api/courier/returns/${encodeURIComponent(id)}/take_back`,
                                           undefined, {compartment});
  if (!ok) { if (message) say(message); } else say(t("return_out_open", {c: compartment}), true);
  refreshLists();
}
async function openDoor(order, compartment) {
  const {ok, message} = await Staff.call("POST", `/api/courier/orders/${order}/open`, {compartment},
                                           {order, compartment});
  if (!ok && message) say(message); else say("", true);
  poll(order);
}

function watch(order) {
  const old = watched.get(order);
  if (old) clearTimeout(old.timer);
  watched.set(order, {progress: null, seen: "", timer: null});
  renderLists();
  poll(order);
}
async function poll(order) {
  const w = watched.get(order);
  if (!w) return;
  clearTimeout(w.timer);
  const {ok, data} = await Staff.call("GET", `/api/courier/orders/${order}`);
  if (watched.get(order) !== w) return;  // hidden, or the session ended meanwhile
  if (ok) {
    const seen = JSON.stringify(data);
    // a door of the order moved: the courier is at the locker, the session is not idle
    if (w.progress && data.doors.map((d) => d.step).join() !== w.progress.doors.map((d) => d.step).join()) {
      Staff.touched();
    }
    const finished = data.result && !w.progress?.result;
    w.progress = data;
    if (seen !== w.seen) { w.seen = seen; renderPanel(order); }
    if (finished) { refreshLists(); return; }
    if (data.result) return;
  }
  w.timer = setTimeout(() => poll(order), POLL_MS);
}

function jamWords(door, p) {
  if (door.moved_to.length) return t("jammed_use", {c: door.compartment, to: door.moved_to.join(", ")});
  if (p.unplaced.length) return t("jammed_no_room", {c: door.compartment, bags: bags(p.unplaced)});
  return t(`steps.${p.phase}.jammed`, {c: door.compartment});
}
function doorWords(door, p) {
  if (door.empty) return t("steps.load.empty", {c: door.compartment});
  return door.step === "jammed" ? jamWords(door, p) : t(`steps.${p.phase}.${door.step}`, {c: door.compartment});
}
function renderPanel(order) {
  const p = watched.get(order).progress;
  const id = `progress-${order}`;
  const panel = el("section", {class: "panel progress", id, "data-order": order,
                               "data-result": p.result || "", "aria-labelledby": `${id}-title`});
  panel.append(el("h2", {id: `${id}-title`},
                  t(p.phase === "load" ? "loading_title" : "reclaim_title", {order})));
  const notes = el("div", {class: "notes", role: "status"});
  for (const d of p.doors.filter((d) => d.step === "jammed")) notes.append(el("p", {class: "bad"}, jamWords(d, p)));
  for (const d of p.doors.filter((d) => d.empty)) notes.append(el("p", {class: "bad"}, doorWords(d, p)));
  panel.append(notes);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "bank");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", `${id}-title`);
  panel.append(svg);
  const rows = el("tbody", {class: "doors"});
  for (const d of p.doors) {
    const tr = el("tr", {"data-id": d.compartment, "data-step": d.step, "data-empty": d.empty ? "yes" : "no"});
    tr.append(el("td", {class: `words ${d.empty ? "empty" : d.step}`}, doorWords(d, p)));
    const where = t("where", {zone: Staff.zone(d.zone), column: d.column, level: d.level});
    tr.append(el("td", {}, d.replaces ? `${where}, ${t("instead", {c: d.replaces})}` : where));
    const td = el("td", {class: "actions"});
    if (d.may_open && d.empty) {
      td.append(button(t("open_again"), () => openDoor(order, d.compartment),
                       {"aria-label": t("open_again_label", {c: d.compartment})}));
    } else if (d.may_open) {
      const again = d.step === "did_not_unlock";
      td.append(button(t(again ? "try_again" : "open"), () => openDoor(order, d.compartment),
                       {"aria-label": t(again ? "try_again_label" : "open_label", {c: d.compartment})}));
    }
    tr.append(td);
    rows.append(tr);
  }
  const table = el("table");
  table.append(rows);
  panel.append(table);
  const inside = p.doors.filter((d) => d.step !== "closed").map((d) => d.compartment).join(", ");
  const state = el("p", {class: `state ${p.result ? "done" : ""}`, role: "status"},
                   p.result ? t(`result.${p.result}`, {order, c: inside, zones: p.held_zones.map(Staff.zone).join(", ")})
                            : t(`doing.${p.phase}`));
  if (p.result === "ready" || p.result === "reclaimed") state.classList.add("good");
  panel.append(state);
  if (p.result) {
    panel.append(button(t("hide"), () => { watched.delete(order); panel.remove(); renderLists(); },
                        {class: "secondary", "aria-label": t("hide_label", {order})}));
  }
  const old = $(id);
  if (old) old.replaceWith(panel); else $("progress-list").prepend(panel);
  Bank.draw(svg, Staff.bank(), new Map(p.doors.map((d) => [d.compartment, d.empty ? "stuck" : DRAWN[d.step]])));
}

Staff.start({
  title: "title_courier", screen: "courier",
  home: (role) => role === "technician" ? "/technician" : null,
  begin() { refreshLists(); listTimer = setInterval(refreshLists, LIST_MS); },
  end() {
    clearInterval(listTimer);
    for (const w of watched.values()) clearTimeout(w.timer);
    watched.clear(); lists = null;
    $("progress-list").textContent = ""; $("to-load").textContent = ""; $("to-reclaim").textContent = "";
    $("goods").textContent = ""; $("goods-section").hidden = true;
    $("returns").textContent = ""; $("returns-section").hidden = true;
    say("", true);
  },
  render() { renderLists(); for (const order of watched.keys()) if (watched.get(order).progress) renderPanel(order); },
});
