// The technician's screen: the drawing of the bank with every compartment's state (free, holding
// an order, out of service; its door open, unlocking or jammed), followed live; choose one to
// open it or to take it out of / put it back in service, always saying why. The locker checks
// the role and the reason again: this screen only spares a useless request.
"use strict";
const t = Staff.t, $ = (id) => document.getElementById(id);
const POLL_MS = 1000, REASON_MIN = 3;
let compartments = [], chosen = null, pollTimer = null;
let opening = null;  // {id, failed, seenOpen}: the opening this screen asked for, followed live
let said = null;  // [key, vars] of the last answer, said again in the other language

function stateWords(c) {
  const why = c.service_reason || "";
  return t(`states.${c.state}`, {order: c.order || "", why});
}
function looks(c) {
  // how the drawing shows it: the door first (what one sees standing there), then the state
  if (c.door === "open") return {state: "opened", mark: ""};
  if (c.door === "forced") return {state: "opened", mark: "!"};
  if (c.door === "unlocking") return {state: "opening", mark: "…"};
  if (c.door === "jammed") return {state: "stuck", mark: "!"};
  if (c.state === "out_of_service") return {state: "out", mark: "✕"};
  if (c.state === "reserved" || c.state === "loaded") return {state: "taken", mark: "●"};
  return {state: "free", mark: ""};
}
function label(c) {
  return t("box_label", {c: c.id, zone: Staff.zone(c.zone), state: stateWords(c), door: t(`doors.${c.door}`)});
}
function needsAttention(c) { return c.state === "out_of_service" || c.door !== "locked" || c.alarms.length > 0; }

async function refresh() {
  const {ok, data} = await Staff.call("GET", "/api/technician/compartments");
  if (ok) { compartments = data.compartments; follow(); render(); }
  clearTimeout(pollTimer);
  if (Staff.session()) pollTimer = setTimeout(refresh, POLL_MS);
}
function follow() {
  if (!opening || opening.failed) return;
  const c = compartments.find((x) => x.id === opening.id);
  if (!c) return;
  if (c.door === "open" || c.door === "forced") opening.seenOpen = true;
  const step = c.door === "jammed" ? "jammed" : opening.seenOpen
    ? (c.door === "locked" ? "closed" : "open") : "opening";
  answer([`tech_steps.${step}`, {c: c.id}], step === "closed" ? "good" : step === "jammed" ? "bad" : "");
  if (step === "closed" || step === "jammed") opening = null;
}
function answer(words, cls = "") {
  said = words && [...words, cls];
  $("action-answer").textContent = words ? t(words[0], words[1]) : "";
  $("action-answer").className = cls;
}
function render() {
  Bank.draw($("bank"), Staff.bank(), new Map(), {
    every: (box) => {
      const c = compartments.find((x) => x.id === box.id);
      return c ? {...looks(c), label: label(c)} : {state: "free", mark: "", label: box.id};
    },
    pick: choose, chosen,
  });
  const bank = Staff.bank();
  if (bank) $("bank").style.minWidth = `${bank.columns * 4.5}rem`;
  const list = $("attention");
  list.textContent = "";
  const attention = compartments.filter(needsAttention);
  for (const c of attention) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button"; b.className = "secondary";
    const alarms = c.alarms.length ? `, ${t("alarms", {list: c.alarms.map((a) => t(`alarm_kinds.${a}`)).join(", ")})}` : "";
    b.textContent = t("attention_line", {c: c.id, state: stateWords(c), door: t(`doors.${c.door}`), alarms});
    b.addEventListener("click", () => choose(c.id));
    li.append(b);
    list.append(li);
  }
  $("attention-empty").hidden = attention.length > 0;
  renderChosen();
  if (said) answer(said.slice(0, 2), said[2]);
}
function renderChosen() {
  const c = compartments.find((x) => x.id === chosen);
  $("chosen").hidden = !c;
  if (!c) return;
  $("chosen-title").textContent = t("compartment", {c: c.id, zone: Staff.zone(c.zone), size: c.size,
                                                    column: c.column, level: c.level});
  const alarms = c.alarms.length ? `; ${t("alarms", {list: c.alarms.map((a) => t(`alarm_kinds.${a}`)).join(", ")})}` : "";
  $("chosen-state").textContent = `${stateWords(c)}, ${t(`doors.${c.door}`)}${alarms}`;
  $("open").textContent = t("open_it", {c: c.id});
  const service = $("service");
  service.hidden = !(c.may_take_out || c.may_put_back);
  service.textContent = t(c.may_put_back ? "put_back" : "take_out");
}
function choose(id) {
  if (chosen !== id) { answer(null); opening = null; }
  chosen = id;
  render();
  $("chosen").scrollIntoView({block: "nearest"});
}
function reason() {
  const why = $("reason").value.trim();
  if (why.length >= REASON_MIN) return why;
  answer(["need_reason", {}], "bad");
  $("reason").focus();
  return null;
}
async function openChosen() {
  const why = reason(), id = chosen;
  if (why === null) return;
  const {ok, data, message} = await Staff.call("POST", `/api/technician/compartments/${id}/open`,
                                                 {reason: why}, {compartment: id});
  if (!ok) { if (message) { said = null; $("action-answer").textContent = message; $("action-answer").className = "bad"; } return; }
  $("reason").value = "";
  opening = {id, failed: data.failed.length > 0, seenOpen: false};
  answer([`tech_steps.${opening.failed ? "did_not_unlock" : "opening"}`, {c: id}], opening.failed ? "bad" : "");
  refresh();
}
async function serviceChosen() {
  const c = compartments.find((x) => x.id === chosen);
  const why = reason();
  if (!c || why === null) return;
  const back = c.may_put_back;
  const {ok, message} = await Staff.call("POST", `/api/technician/compartments/${c.id}/service`,
                                         {in_service: back, reason: why}, {compartment: c.id});
  if (!ok) { if (message) { said = null; $("action-answer").textContent = message; $("action-answer").className = "bad"; } return; }
  $("reason").value = "";
  answer([back ? "put_back_done" : "taken_out", {c: c.id}], "good");
  refresh();
}

$("open").addEventListener("click", openChosen);
$("service").addEventListener("click", serviceChosen);
Staff.start({
  title: "title_technician", screen: "technician",
  home: (role) => role === "technician" ? null : "/courier",
  begin(session) {
    if (session.role !== "technician") { location.assign("/courier"); return; }
    refresh();
  },
  end() { clearTimeout(pollTimer); compartments = []; chosen = null; opening = null; answer(null); render(); },
  render,
});
