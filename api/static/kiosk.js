// The customer's screen: a keypad, a barcode reader typing into the same field (it ends with
// Enter), one POST per code, answers in the customer's language, and back to the start when idle.
// An opening replaces the keypad with the bank's drawing, the doors lit, each door's state live
// from /api/kiosk/doors, until all are closed. The assistance mode (its button, or a long press
// anywhere) speaks every message (the daemon's espeak-ng audio, else the browser's voice), makes
// the text larger and gives more time.
// After wrong codes the locker judges codes more slowly (429 with retry_after_s, nothing judged):
// the screen keeps the code, counts down and sends it again by itself.
"use strict";
let TEXT = null, lang = "en", assist = false, result = null, doorStates = {};
let info = {support_phone: "", digits: 11, idle_s: 45, bank: null, speech: false};
let idleTimer = null, waitTimer = null, doneTimer = null, pressTimer = null, pressed = false;
let autoTries = 0;  // the same code sent again by the screen; a guesser still at it may win a turn
const AUTO_TRIES = 4, LONG_PRESS_MS = 1200, SLOWER = 3;  // assistance: three times the time
const $ = (id) => document.getElementById(id);
const code = $("code"), answer = $("answer"), player = new Audio();
const t = (key, vars = {}) => TEXT[lang][key].replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
const cell = (id) => info.bank.compartments.find((c) => c.id === id);
const doorWords = (id) => {
  const c = cell(id) || {id, zone: "", column: "?", level: "?"};
  return t("door", {id, zone: TEXT[lang].zones[c.zone] || c.zone, column: c.column, level: c.level});
};
const grouped = (digits) => digits.length > 7 ? `${digits.slice(0, 3)} ${digits.slice(3, 7)} ${digits.slice(7)}`
  : digits.length > 3 ? `${digits.slice(0, 3)} ${digits.slice(3)}` : digits;

// speech: `parts` are message names ("doors" reads the doors); vars fill them
function speak(parts, vars = {}, always = false) {
  if (!assist && !always) return;
  const words = parts.map((p) => p === "doors" ? vars.doors.map((d) => doorWords(d) + ".").join(" ")
    : t(p, {phone: info.support_phone, n: info.digits, c: (vars.failed || []).join(", "), s: vars.s})).join(" ");
  const voice = () => {
    if (!window.speechSynthesis) return;
    speechSynthesis.cancel();
    const u = new SpeechSynthesisUtterance(words); u.lang = lang; speechSynthesis.speak(u);
  };
  if (!info.speech) { voice(); return; }
  const q = new URLSearchParams({lang, say: parts.join(","), doors: (vars.doors || []).join(","),
                                 failed: (vars.failed || []).join(","), s: vars.s || 0});
  player.src = `/api/speech?${q}`;
  player.play().catch(voice);
}
function setAssist(on, quiet = false) {
  if (on === assist) return;
  assist = on;
  document.body.classList.toggle("assist", on);
  $("assist").setAttribute("aria-pressed", String(on));
  if (!quiet) speak([on ? "assist_on" : "assist_off"], {}, true);
  touched();
}
function setLang(next) {
  lang = next;
  document.documentElement.lang = next;
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  for (const l of ["en", "fr"]) $(`lang-${l}`).setAttribute("aria-pressed", String(l === lang));
  reset();
  speak(["prompt"]);
}
function showing(name) { $("start").hidden = name !== "start"; $("result").hidden = name !== "result"; }
function reset() {
  stopWaiting(); clearTimeout(doneTimer);
  result = null; showing("start");
  code.value = ""; say("", "");
  code.focus();
}
function touched() {
  clearTimeout(idleTimer);
  // doors still open: the screen keeps telling to close them for longer
  const wait = info.idle_s * 1000 * (assist ? SLOWER : 1) * (result && !result.done ? 4 : 1);
  idleTimer = setTimeout(() => {
    learnClock();  // the locker's clock may have been corrected meanwhile
    setAssist(false, true);
    if (lang !== "en") setLang("en"); else reset();
  }, wait);
}
function learnClock() {
  return Ask.learn().then((data) => {
    info = data; $("name").textContent = data.name; code.maxLength = data.digits + 6;
  }).catch(() => {});
}
function say(text, cls) { answer.textContent = text; answer.className = cls; }
function tell(key, vars = {}) {  // a refusal: shown and spoken
  say(t(key, {phone: info.support_phone, n: info.digits, ...vars}), "bad");
  speak([key], vars);
}
function stopWaiting() { clearInterval(waitTimer); clearTimeout(waitTimer); waitTimer = null; }
function codeChanged() { if (waitTimer) { stopWaiting(); say("", ""); } }
// say `key` with the seconds left, each second (spoken once); then run `then` (if any)
function countdown(seconds, key, then) {
  stopWaiting();
  let left = Math.max(1, Math.ceil(seconds));
  tell(key, {s: left});
  waitTimer = setInterval(() => {
    left -= 1;
    if (left > 0) { say(t(key, {s: left}), "bad"); return; }
    stopWaiting();
    say("", "");
    if (then) then();
  }, 1000);
}

// the result screen: what this pickup opened, on the drawing and in words, live
function phase(id) {
  if (result.failed.includes(id)) return "stuck";
  const s = doorStates[id];
  if (s === "open" || s === "forced") { result.seen.add(id); return "opened"; }
  if (s === "jammed") return "stuck";
  return s === "locked" && result.seen.has(id) ? "closed" : "opening";
}
function showResult(body) {
  result = {opened: body.opened.map((d) => d.compartment), failed: body.failed.map((d) => d.compartment),
            seen: new Set(), done: false};
  showing("result");
  renderResult();
  $("back").focus();
  speak(["open", "doors", result.failed.length ? "trouble" : "close"],
        {doors: result.opened, failed: result.failed});
}
function renderResult() {
  const lit = new Map([...result.opened, ...result.failed].map((id) => [id, phase(id)]));
  Bank.draw($("bank"), info.bank, lit);
  const list = $("doors"); list.textContent = "";
  for (const [id, state] of lit) {
    const li = document.createElement("li");
    li.className = `${cell(id)?.zone || ""} ${state}`; li.dataset.id = id; li.dataset.state = state;
    li.textContent = t("door_is", {door: doorWords(id), state: t(state)});
    list.appendChild(li);
  }
  const stuck = [...lit].filter(([, s]) => s === "stuck").map(([id]) => id);
  const closed = [...lit.values()].every((s) => s === "closed" || s === "stuck") && !stuck.length;
  const note = $("result-note");
  note.textContent = stuck.length ? t("trouble", {c: stuck.join(", "), phone: info.support_phone})
    : closed ? t("done") : t("close");
  note.className = stuck.length ? "bad" : "good";
  if (closed && !result.done) {
    result.done = true;
    speak(["done"]);
    doneTimer = setTimeout(reset, (assist ? SLOWER : 1) * 5000);
  }
}
const doors = new EventSource("/api/kiosk/doors");  // reconnects by itself
doors.onmessage = (e) => { doorStates = JSON.parse(e.data); if (result) renderResult(); };

async function submit(auto = false) {
  stopWaiting();
  if (!auto) autoTries = 0;
  const typed = code.value.trim();
  code.value = "";
  if (!typed) return;
  let r, body;
  try {
    r = await Ask.send("POST", "/api/pickup", {code: typed, screen: "front", assistance: assist});
    body = await r.json();
  } catch (e) {
    tell(e.name === "AbortError" ? "late" : "error");
    return;
  }
  if (r.ok) {
    say("", "");
    showResult(body);
  } else if (body.error === "throttled") {
    code.value = typed;  // nothing was judged: the same code goes again when the wait is over
    if (autoTries < AUTO_TRIES) {
      autoTries += 1;
      touched();  // the screen is busy for the customer: not idle
      countdown(body.retry_after_s, "wait", () => submit(true));
    } else {
      tell("again");
    }
  } else if (["wrong_code", "used", "expired"].includes(body.error)) {
    tell(body.error === "wrong_code" ? "wrong" : body.error);
    if (body.retry_after_s > 0) {
      const left = body.retry_after_s - 2.5;
      waitTimer = setTimeout(() => { if (left > 0) countdown(left, "slow"); }, 2500);
    }
  } else {
    const known = {bad_code_format: "format", check_the_code: "check", starting: "starting",
                   temporarily_unavailable: "unavailable", stale_request: "late", not_ready: "not_ready"};
    tell(known[body.error] || "error");
    if (body.error === "stale_request") learnClock();
  }
}

document.querySelectorAll(".keys button[type=button]").forEach((b) => b.addEventListener("click", () => {
  codeChanged();  // a code being changed is not sent again by itself
  code.value = b.dataset.key === "clear" ? "" : grouped((code.value + b.textContent).replace(/\D/g, ""));
  code.focus();
}));
code.addEventListener("input", codeChanged);
$("form").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
$("lang-en").addEventListener("click", () => setLang("en"));
$("lang-fr").addEventListener("click", () => setLang("fr"));
$("assist").addEventListener("click", () => setAssist(!assist));
$("back").addEventListener("click", reset);
// a long press anywhere turns the assistance on (or off); the press is then not a key
document.addEventListener("pointerdown", (e) => {
  clearTimeout(pressTimer);
  if (e.target.closest("#assist")) return;
  pressTimer = setTimeout(() => { pressed = true; setAssist(!assist); }, LONG_PRESS_MS);
});
["pointerup", "pointercancel"].forEach((ev) => document.addEventListener(ev, () => clearTimeout(pressTimer)));
document.addEventListener("click", (e) => {
  if (pressed) { pressed = false; e.stopPropagation(); e.preventDefault(); }
}, true);
document.addEventListener("contextmenu", (e) => e.preventDefault());
document.addEventListener("keydown", (e) => {  // a scan on the result screen starts a new code
  if (result && /^\d$/.test(e.key)) reset();
});
["click", "keydown", "touchstart"].forEach((ev) => document.addEventListener(ev, touched));
Promise.all([fetch("/static/kiosk-text.json").then((r) => r.json()), learnClock()]).then(([text]) => {
  TEXT = text;
  setLang("en");
  touched();
});
