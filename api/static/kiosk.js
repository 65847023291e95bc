// The customer's screen: a keypad, a barcode reader typing into the same field (it ends with
// Enter), one POST per code, answers in the customer's language, and back to the start when idle.
// After wrong codes the locker judges codes more slowly (429 with retry_after_s, nothing judged):
// the screen keeps the code, counts down and sends it again by itself.
"use strict";
const TEXT = {
  en: {prompt: "Type or scan your pickup code", clear: "C", ok: "OK",
       open: "Open now:", close: "Take your goods and close the doors. Thank you!",
       wrong: "This code is not valid.", used: "This code has already been used.",
       expired: "This code's pickup window has ended. Please call {phone}.",
       wait: "Wrong codes were typed here recently, so codes are checked more slowly. Your code is kept and will be tried in {s} s.",
       slow: "After wrong codes, the next code is checked in {s} s.",
       again: "Codes are still checked slowly. Press OK to try your code again.",
       format: "A pickup code has {n} digits.",
       check: "Please check the code: one digit looks mistyped or two are swapped.", trouble: "Compartment {c} did not open. Please call {phone}.",
       starting: "The locker is starting. Try again in a moment.",
       unavailable: "Your compartment cannot open right now. Nothing was opened and your code still works: please try again in a few minutes or call {phone}.",
       late: "The locker did not answer in time. If no door opened, your code still works: please try again.",
       not_ready: "This order is not ready for pickup. Please call {phone}.",
       error: "Something went wrong. Please call {phone}.",
       zones: {ambient: "ambient", fresh: "fresh", frozen: "frozen"},
       where: (loc) => loc},
  fr: {prompt: "Tapez ou scannez votre code de retrait", clear: "C", ok: "OK",
       open: "Ouvert :", close: "Prenez vos courses et refermez les portes. Merci !",
       wrong: "Ce code n'est pas valable.", used: "Ce code a déjà été utilisé.",
       expired: "Le délai de retrait de ce code est dépassé. Appelez le {phone}.",
       wait: "Des codes erronés ont été tapés ici, les codes sont donc vérifiés plus lentement. Votre code est gardé et sera essayé dans {s} s.",
       slow: "Après des codes erronés, le prochain code est vérifié dans {s} s.",
       again: "Les codes sont encore vérifiés lentement. Appuyez sur OK pour réessayer votre code.",
       format: "Un code de retrait a {n} chiffres.",
       check: "Vérifiez le code : un chiffre semble erroné ou deux sont inversés.", trouble: "Le casier {c} ne s'est pas ouvert. Appelez le {phone}.",
       starting: "Le casier démarre. Réessayez dans un instant.",
       unavailable: "Votre casier ne peut pas s'ouvrir pour le moment. Rien n'a été ouvert et votre code reste valable : réessayez dans quelques minutes ou appelez le {phone}.",
       late: "Le casier n'a pas répondu à temps. Si aucune porte ne s'est ouverte, votre code reste valable : réessayez.",
       not_ready: "Cette commande n'est pas prête. Appelez le {phone}.",
       error: "Une erreur est survenue. Appelez le {phone}.",
       zones: {ambient: "ambiant", fresh: "frais", frozen: "surgelé"},
       where: (loc) => loc.replace("column", "colonne").replace("level", "niveau")},
};
let lang = "en", info = {support_phone: "", digits: 11, idle_s: 45}, idleTimer = null, waitTimer = null;
let autoTries = 0;  // the same code sent again by the screen; a guesser still at it may win a turn
const AUTO_TRIES = 4;
const $ = (id) => document.getElementById(id);
const code = $("code"), answer = $("answer"), doors = $("doors");
const t = (key, vars = {}) => TEXT[lang][key].replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");

function setLang(next) {
  lang = next;
  document.documentElement.lang = next;
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  reset();
}
function reset() {
  stopWaiting();
  code.value = ""; answer.textContent = ""; answer.className = ""; doors.textContent = "";
  code.focus();
}
function touched() {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    learnClock();  // the locker's clock may have been corrected meanwhile
    if (lang !== "en") setLang("en"); else reset();
  }, info.idle_s * 1000);
}
function learnClock() {
  return Ask.learn().then((data) => {
    info = data; $("name").textContent = data.name; code.maxLength = data.digits + 6;
  }).catch(() => {});
}
function say(text, cls) { answer.textContent = text; answer.className = cls; }
function stopWaiting() { clearInterval(waitTimer); waitTimer = null; }
function codeChanged() { if (waitTimer) { stopWaiting(); say("", ""); } }
// say `key` with the seconds left, each second; then run `then` (if any)
function countdown(seconds, key, then) {
  stopWaiting();
  let left = Math.max(1, Math.ceil(seconds));
  say(t(key, {s: left}), "bad");
  waitTimer = setInterval(() => {
    left -= 1;
    if (left > 0) { say(t(key, {s: left}), "bad"); return; }
    stopWaiting();
    say("", "");
    if (then) then();
  }, 1000);
}
async function submit(auto = false) {
  stopWaiting();
  if (!auto) autoTries = 0;
  const typed = code.value.trim();
  code.value = "";
  doors.textContent = "";
  if (!typed) return;
  let r, body;
  try {
    r = await Ask.send("POST", "/api/pickup", {code: typed, screen: "front"});
    body = await r.json();
  } catch (e) {
    say(t(e.name === "AbortError" ? "late" : "error", {phone: info.support_phone}), "bad");
    return;
  }
  if (r.ok) {
    say(t("open"), "good");
    for (const d of body.opened) {
      const li = document.createElement("li");
      li.textContent = `${d.compartment} · ${TEXT[lang].zones[d.zone] || d.zone} · ${TEXT[lang].where(d.location)}`;
      doors.appendChild(li);
    }
    const note = document.createElement("li");
    note.textContent = body.failed.length
      ? t("trouble", {c: body.failed.map((d) => d.compartment).join(", "), phone: info.support_phone})
      : t("close");
    note.className = body.failed.length ? "bad" : "good";
    doors.appendChild(note);
  } else if (body.error === "throttled") {
    code.value = typed;  // nothing was judged: the same code goes again when the wait is over
    if (autoTries < AUTO_TRIES) {
      autoTries += 1;
      touched();  // the screen is busy for the customer: not idle
      countdown(body.retry_after_s, "wait", () => submit(true));
    } else {
      say(t("again"), "bad");
    }
  } else if (body.error === "bad_code_format") {
    say(t("format", {n: info.digits}), "bad");
  } else if (body.error === "check_the_code") {
    say(t("check"), "bad");
  } else if (["wrong_code", "used", "expired"].includes(body.error)) {
    const text = body.error === "wrong_code" ? "wrong" : body.error;
    say(t(text, {phone: info.support_phone}), "bad");
    if (body.retry_after_s > 0) {
      const left = body.retry_after_s - 2.5;
      waitTimer = setTimeout(() => { if (left > 0) countdown(left, "slow"); }, 2500);
    }
  } else if (body.error === "starting") {
    say(t("starting"), "bad");
  } else if (body.error === "temporarily_unavailable") {
    say(t("unavailable", {phone: info.support_phone}), "bad");
  } else if (body.error === "stale_request") {
    say(t("late"), "bad");
    learnClock();
  } else if (body.error === "not_ready") {
    say(t("not_ready", {phone: info.support_phone}), "bad");
  } else {
    say(t("error", {phone: info.support_phone}), "bad");
  }
}

document.querySelectorAll(".keys button[type=button]").forEach((b) => b.addEventListener("click", () => {
  codeChanged();  // a code being changed is not sent again by itself
  code.value = b.dataset.key === "clear" ? "" : code.value + b.textContent;
  code.focus();
}));
code.addEventListener("input", codeChanged);
$("form").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
$("lang-en").addEventListener("click", () => setLang("en"));
$("lang-fr").addEventListener("click", () => setLang("fr"));
["click", "keydown", "touchstart"].forEach((ev) => document.addEventListener(ev, touched));
learnClock();
setLang("en");
touched();
