// The customer's screen: a keypad, a barcode reader typing into the same field (it ends with
// Enter), one POST per code, answers in the customer's language, and back to the start when idle.
"use strict";
const TEXT = {
  en: {prompt: "Type or scan your pickup code", clear: "C", ok: "OK",
       open: "Open now:", close: "Take your goods and close the doors. Thank you!",
       wrong: "This code is not valid.", used: "This code has already been used.",
       expired: "This code's pickup window has ended. Please call {phone}.",
       wait: "Too many wrong codes. Try again in {s} s.",
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
       wait: "Trop de codes erronés. Réessayez dans {s} s.",
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
function countdown(seconds) {
  clearInterval(waitTimer);
  let left = seconds;
  say(t("wait", {s: left}), "bad");
  waitTimer = setInterval(() => {
    left -= 1;
    if (left <= 0) { clearInterval(waitTimer); say("", ""); } else say(t("wait", {s: left}), "bad");
  }, 1000);
}
async function submit() {
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
    countdown(body.retry_after_s);
  } else if (body.error === "bad_code_format") {
    say(t("format", {n: info.digits}), "bad");
  } else if (body.error === "check_the_code") {
    say(t("check"), "bad");
  } else if (["wrong_code", "used", "expired"].includes(body.error)) {
    const text = body.error === "wrong_code" ? "wrong" : body.error;
    say(t(text, {phone: info.support_phone}), "bad");
    if (body.retry_after_s > 0) setTimeout(() => countdown(body.retry_after_s), 2500);
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
  code.value = b.dataset.key === "clear" ? "" : code.value + b.textContent;
  code.focus();
}));
$("form").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
$("lang-en").addEventListener("click", () => setLang("en"));
$("lang-fr").addEventListener("click", () => setLang("fr"));
["click", "keydown", "touchstart"].forEach((ev) => document.addEventListener(ev, touched));
learnClock();
setLang("en");
touched();
