// The customer's screen: a keypad, a barcode reader typing into the same field (it ends with
// Enter), one POST per code, answers in the customer's language, and back to the start when idle.
// An opening replaces the keypad with the bank's drawing, the doors lit, each door's outcome live
// from /api/kiosk/doors (opening, open, closed, did not unlock, did not open, kept back), until
// all are closed; then "done", and back to the start. Every refusal the API gives has its words
// with the next step (kiosk-text.json "refusals", keyed by the API's error code). The assistance
// mode (its button, or a long press anywhere) speaks every message (the daemon's espeak-ng audio,
// else the browser's voice), makes the text larger and gives more time.
// After wrong codes the locker judges codes more slowly (429 with retry_after_s, nothing judged):
// the keypad is locked with the seconds shown over it, and the screen sends the kept code again
// by itself. Focus always returns to the code field, so a scan always lands there.
// Returns: a pickup's answer may carry a return offer ("Return something" on the result screen),
// and a return code typed at the keypad opens the same offer at once. The customer says what they
// hand back (crates, or an item of a zone), one compartment of that zone opens, and the result
// screen follows its door until it is closed again; a door that did not open can be tried again.
"use strict";
let TEXT = null, lang = "en", assist = false, result = null, doorStates = {};
let info = {support_phone: "", digits: 11, idle_s: 45, bank: null, speech: false, returns: []};
let offer = null;  // what this customer may hand back (from their pickup or a return code)
let idleTimer = null, waitTimer = null, doneTimer = null, pressTimer = null, pressed = false;
let autoTries = 0;  // the same code sent again by the screen; a guesser still at it may win a turn
const AUTO_TRIES = 4, LONG_PRESS_MS = 1200, SLOWER = 3;  // assistance: three times the time
// how long the final screen stays (times SLOWER, assisted); "Return something" is there from the
// moment the doors open, so the customer has had the time to see it
const DONE_S = 5, TROUBLE_S = 30;
const $ = (id) => document.getElementById(id);
const code = $("code"), answer = $("answer"), player = new Audio();
const words = (key) => key.split(".").reduce((o, k) => (o == null ? o : o[k]), TEXT[lang]);
const has = (key) => typeof words(key) === "string";
// the support number never breaks across lines
const phone = () => (info.support_phone || "").replace(/ /g, "\u00a0").replace(/-/g, "\u2011");
const t = (key, vars = {}) => (has(key) ? words(key) : words("refusals.error"))
  .replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
const cell = (id) => info.bank.compartments.find((c) => c.id === id);
const zoneWords = (z) => info.bank?.zones?.[z]?.[lang] || z;  // the app's declarations
const doorWords = (id) => {
  const c = cell(id) || {id, zone: "", column: "?", level: "?"};
  return t("door", {id, zone: zoneWords(c.zone), column: c.column, level: c.level});
};
const grouped = (digits) => digits.length > 7 ? `${digits.slice(0, 3)} ${digits.slice(3, 7)} ${digits.slice(7)}`
  : digits.length > 3 ? `${digits.slice(0, 3)} ${digits.slice(3)}` : digits;
const common = () => ({phone: phone(), n: info.digits});

// speech: `parts` are message names ("doors" reads the doors); vars fill them
function speak(parts, vars = {}, always = false) {
  if (!assist && !always) return;
  const said = parts.map((p) => p === "doors" ? vars.doors.map((d) => doorWords(d) + ".").join(" ")
    : t(p, {...common(), phone: info.support_phone, c: (vars.failed || []).join(", "), s: vars.s,
            peak: vars.peak, m: vars.m})).join(" ");
  const voice = () => {
    if (!window.speechSynthesis) return;
    speechSynthesis.cancel();
    const u = new SpeechSynthesisUtterance(said); u.lang = lang; speechSynthesis.speak(u);
  };
  if (!info.speech) { voice(); return; }
  const q = new URLSearchParams({lang, say: parts.join(","), doors: (vars.doors || []).join(","),
                                 failed: (vars.failed || []).join(","), s: vars.s || 0,
                                 peak: vars.peak ?? "", m: vars.m ?? ""});
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
  document.title = t("title");
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  document.querySelectorAll("[data-t-label]").forEach((el) => el.setAttribute("aria-label", t(el.dataset.tLabel)));
  for (const l of ["en", "fr"]) $(`lang-${l}`).setAttribute("aria-pressed", String(l === lang));
  reset();
  speak(["prompt"]);
}
function showing(name) {
  for (const id of ["start", "result", "returns"]) $(id).hidden = name !== id;
}
function reset() {
  stopWaiting(); clearTimeout(doneTimer);
  result = null; offer = null; showing("start");
  $("kinds").textContent = ""; $("return-answer").textContent = "";
  $("doors").textContent = ""; $("result-note").textContent = "";  // nothing left to read
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
  say(t(key, {...common(), ...vars}), "bad");
  speak([key], vars);
}
// the keypad is locked while the locker judges codes more slowly; the seconds show over it
function lockKeys(seconds) {
  const on = seconds > 0;
  document.querySelectorAll("#form button").forEach((b) => { b.disabled = on; });
  code.readOnly = on;
  $("form").classList.toggle("waiting", on);
  $("wait-over").hidden = !on;
  $("wait-over").textContent = on ? `${seconds} s` : "";
}
function stopWaiting() {
  clearInterval(waitTimer); clearTimeout(waitTimer); waitTimer = null;
  lockKeys(0);
}
function codeChanged() { if (waitTimer) { stopWaiting(); say("", ""); } }
// say `key` with the seconds left, each second (spoken once), the keypad locked; then run `then`
function countdown(seconds, key, then) {
  stopWaiting();
  let left = Math.max(1, Math.ceil(seconds));
  tell(key, {s: left});
  lockKeys(left);
  waitTimer = setInterval(() => {
    left -= 1;
    if (left > 0) { say(t(key, {s: left}), "bad"); lockKeys(left); return; }
    stopWaiting();
    say("", "");
    code.focus();
    if (then) then();
  }, 1000);
}

// the result screen: what this pickup opened, on the drawing and in words, live
function phase(id) {
  if (result.kept.includes(id)) return "kept";
  if (result.failed.includes(id)) return "did_not_unlock";
  const s = doorStates[id];
  if (s === "open" || s === "forced") { result.seen.add(id); return "opened"; }
  if (s === "jammed") return "jammed";
  return s === "locked" && result.seen.has(id) ? "closed" : "opening";
}
const ids = (list) => (list || []).map((d) => d.compartment);
function showResult(body) {
  offer = body.return_offer || null;
  if (offer && !(body.opened || []).length && !(body.failed || []).length) {
    showReturns();  // a return code: nothing to collect, something to hand back
    return;
  }
  result = {order: body.order, opened: ids(body.opened), failed: ids(body.failed),
            kept: ids(body.withheld), withheld: body.withheld || [], warned: body.warned || [],
            seen: new Set(), done: false, returning: false};
  showing("result");
  renderResult();
  $("back").focus();  // a scan on this screen starts a new code (see keydown below)
  const kept = result.withheld[0];
  if (kept) {  // the assisted customer hears which bag is kept back, and why
    speak(["open", "doors", "withheld"], {doors: result.opened, failed: [kept.compartment],
                                         peak: kept.peak_c ?? "", m: Math.round(kept.minutes_above)});
  } else {
    speak(["open", "doors", result.failed.length ? "trouble_unlock" : "close"],
          {doors: result.opened, failed: result.failed});
  }
}
// what the customer may hand back, one button per kind (those with no room now greyed)
function showReturns(note = "") {
  clearTimeout(doneTimer);
  result = null;
  showing("returns");
  const box = $("kinds"); box.textContent = "";
  const shown = info.returns.filter((k) => !offer.kind || k.kind === offer.kind);
  for (const k of shown) {
    const b = document.createElement("button");
    const room = offer.kinds.includes(k.kind);
    b.type = "button"; b.className = k.zone; b.dataset.kind = k.kind; b.disabled = !room;
    b.textContent = room ? t(`kinds.${k.kind}`) : `${t(`kinds.${k.kind}`)} (${t("no_room")})`;
    b.addEventListener("click", () => handBack(k.kind));
    box.appendChild(b);
  }
  const answer = $("return-answer");
  answer.textContent = note || (offer.by_code ? t("return_code_intro") : "");
  answer.className = note ? "bad" : "";
  (box.querySelector("button:not(:disabled)") || $("return-cancel")).focus();
  speak(["return_question"]);
}
async function handBack(kind) {
  let r, body;
  try {
    r = await Ask.send("POST", "/api/returns", {offer: offer.offer, kind, screen: "front"});
    body = await r.json();
  } catch (e) {
    showReturns(t(e.name === "AbortError" ? "refusals.stale_request" : "refusals.error", common()));
    return;
  }
  if (!r.ok) {
    const key = has(`refusals.${body.error}`) ? `refusals.${body.error}` : "refusals.error";
    showReturns(t(key, common()));
    speak([key]);
    return;
  }
  result = {order: body.order, opened: ids(body.opened), failed: ids(body.failed), kept: [],
            withheld: [], warned: [], seen: new Set(), done: false, returning: true, kind};
  showing("result");
  renderResult();
  $("back").focus();
  speak(["return_title", "doors", result.failed.length ? "return_trouble" : "return_close"],
        {doors: result.opened, failed: result.failed});
}
function renderResult() {
  const lit = new Map([...result.opened, ...result.failed, ...result.kept].map((id) => [id, phase(id)]));
  Bank.draw($("bank"), info.bank, lit);
  const list = $("doors"); list.textContent = "";
  for (const [id, state] of lit) {
    const li = document.createElement("li");
    li.className = `${cell(id)?.zone || ""} ${state}`; li.dataset.id = id; li.dataset.state = state;
    li.textContent = t("door_is", {door: doorWords(id), state: t(state)});
    list.appendChild(li);
  }
  const of = (state) => [...lit].filter(([, s]) => s === state).map(([id]) => id);
  const unlock = of("did_not_unlock"), jammed = of("jammed");
  const waiting = of("opening").length + of("opened").length;
  const finished = waiting === 0;
  const trouble = unlock.length + jammed.length > 0;
  const notes = [];
  if (unlock.length) notes.push(t("trouble_unlock", {c: unlock.join(", "), ...common()}));
  if (jammed.length) notes.push(t("trouble_jammed", {c: jammed.join(", "), ...common()}));
  for (const bag of result.withheld) {
    notes.push(t("withheld", {c: bag.compartment, peak: bag.peak_c ?? "?", m: Math.round(bag.minutes_above)}));
  }
  for (const bag of result.warned) {
    notes.push(t("warned", {c: bag.compartment, m: Math.round(bag.minutes_above)}));
  }
  const returning = result.returning;
  if (returning && trouble) {
    notes.length = 0;  // the customer's next step is the button: another compartment opens
    notes.push(t("return_trouble", {c: [...unlock, ...jammed].join(", "), ...common()}));
  }
  if (!trouble) notes.push(t(returning ? (finished ? "return_done" : "return_close") : (finished ? "done" : "close")));
  const note = $("result-note");
  note.textContent = notes.join(" ");
  note.className = trouble || result.withheld.length ? "bad" : "good";
  const title = $("result-title");
  title.textContent = t(trouble ? "trouble_title" : finished ? "done_title" : returning ? "return_title" : "open_title");
  title.className = trouble ? "bad" : "good";
  $("return-again").hidden = !(returning && trouble);
  $("return-start").hidden = returning || !offer;
  // an order reference to quote on the phone, whenever something did not go to plan
  const ref = $("result-ref");
  ref.hidden = !(trouble || result.withheld.length || result.warned.length);
  ref.textContent = t("reference", {order: result.order});
  if (finished && !result.done) {
    result.done = true;
    if (!trouble) speak([returning ? "return_done" : "done"]);
    // a customer who may still hand something back gets the time to press for it
    const stay = trouble || result.withheld.length ? TROUBLE_S : DONE_S;
    doneTimer = setTimeout(reset, (assist ? SLOWER : 1) * stay * 1000);
  }
}
const doors = new EventSource("/api/kiosk/doors");  // reconnects by itself
doors.onmessage = (e) => { doorStates = JSON.parse(e.data); if (result) renderResult(); };

async function submit(auto = false) {
  const typed = code.value.trim();
  code.focus();  // whatever was tapped, the next scan lands in the field
  if (!typed || code.readOnly) return;  // an empty submit changes nothing
  stopWaiting();
  if (!auto) autoTries = 0;
  code.value = "";
  let r, body;
  try {
    r = await Ask.send("POST", "/api/pickup", {code: typed, screen: "front", assistance: assist});
    body = await r.json();
  } catch (e) {
    tell(e.name === "AbortError" ? "refusals.stale_request" : "refusals.error");
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
      countdown(body.retry_after_s, "refusals.throttled", () => submit(true));
    } else {
      tell("again");
    }
  } else {
    const key = has(`refusals.${body.error}`) ? `refusals.${body.error}` : "refusals.error";
    tell(key);
    if (body.error === "stale_request") learnClock();
    if (body.retry_after_s > 0) {  // a wrong code: the next is judged later; read this first
      const left = body.retry_after_s - 2.5;
      waitTimer = setTimeout(() => { if (left > 0) countdown(left, "slow"); }, 2500);
    }
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
$("assist").addEventListener("click", () => { setAssist(!assist); code.focus(); });
$("back").addEventListener("click", reset);
$("return-start").addEventListener("click", () => showReturns());
$("return-again").addEventListener("click", () => handBack(result.kind));
$("return-cancel").addEventListener("click", reset);
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
document.addEventListener("keydown", (e) => {
  if ((result || offer) && /^\d$/.test(e.key)) {  // a scan here starts a new code
    reset();
    code.value = e.key;
    e.preventDefault();
  } else if (document.activeElement !== code && /^\d$/.test(e.key) && !code.readOnly) {
    code.focus();  // a scan while a button had focus still types into the field
  }
});
["click", "keydown", "touchstart"].forEach((ev) => document.addEventListener(ev, touched));
Promise.all([fetch("/static/kiosk-text.json").then((r) => r.json()), learnClock()]).then(([text]) => {
  TEXT = text;
  setLang("en");
  touched();
});
