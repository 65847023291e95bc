// What the courier's and the technician's screens share: the words in English or French
// (staff-text.json), the login with a TOTP code, and the session. The locker ends a session
// nobody has touched for its idle time; the screen asks it how long is left (GET
// /api/staff/session, which does not keep it alive), warns in the last seconds, and returns to
// the login by itself when it has ended. A touch on the screen (POST /api/staff/session) or any
// action keeps it. The token lives in sessionStorage, so the two screens share one login.
"use strict";
const Staff = (() => {
  const KEY = "staff-session", LANG_KEY = "staff-lang", WARN_S = 20, TOUCH_EVERY_MS = 5000;
  let TEXT = null, lang = "en", session = null, page = null, info = {bank: null};
  let endTimer = null, warnTimer = null, lastTouch = 0;
  const $ = (id) => document.getElementById(id);

  // a message of the catalogue ("steps.load.open"), its {names} filled from vars
  function t(key, vars = {}) {
    let value = TEXT[lang];
    for (const part of key.split(".")) value = value == null ? undefined : value[part];
    if (typeof value !== "string") return key;
    return value.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
  }
  const has = (key) => key.split(".").reduce((v, p) => (v == null ? undefined : v[p]), TEXT[lang]) !== undefined;
  const zone = (z) => info.bank?.zones?.[z]?.[lang] || z;  // the app's declarations

  // what a refusal means, in the screen's language, from the answer's reason and fields
  function refusal(data, vars = {}) {
    const key = `refusals.${data.error}`;
    if (!has(key)) return t("refused", {message: data.message || data.error || ""});
    return t(key, {
      ...vars,
      s: data.retry_after_s ?? "",
      zones: (data.zones || []).map(zone).join(", "),
      missing: (data.missing || []).map((b) => t("bag", {zone: zone(b.zone), size: b.size})).join(", "),
      compartments: (data.compartments || []).join(", "),
    });
  }

  function applyLang() {
    document.documentElement.lang = lang;
    document.title = t(page.title);
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    document.querySelectorAll("[data-t-label]").forEach((el) => {
      el.setAttribute("aria-label", t(el.dataset.tLabel));
    });
    for (const l of ["en", "fr"]) $(`lang-${l}`).setAttribute("aria-pressed", String(l === lang));
    if (session) hello();
    page.render();
  }
  function setLang(next) {
    lang = next;
    try { localStorage.setItem(LANG_KEY, next); } catch (e) { /* private mode: not kept */ }
    applyLang();
  }
  function hello() {
    $("hello").textContent = t("hello", {name: session.name, role: t(`roles.${session.role}`)});
  }

  // fetch through Ask (it says when it asked, gives up in time); a 401 ends the session here.
  // `vars` fill a refusal's words: the order, the compartment the request was about
  async function call(method, path, body, vars = {}) {
    let r;
    try {
      r = await Ask.send(method, path, body, session ? {Authorization: `Bearer ${session.token}`} : {});
    } catch (e) {
      if (e.name === "AbortError") return {ok: false, status: 0, data: {}, message: t("late")};
      throw e;
    }
    const data = await r.json().catch(() => ({}));
    if (r.status === 401 && session) {
      const idle = Math.round(session.idle_timeout_s || 120);
      ended(data.error === "session_ended"
        ? t("session_ended", {time: idle >= 60 ? `${Math.round(idle / 60)} min` : `${idle} s`}) : refusal(data));
      return {ok: false, status: 401, data, message: ""};
    }
    if (r.ok && method === "POST" && session) know(session.idle_timeout_s);  // an action keeps it
    return {ok: r.ok, status: r.status, data, message: r.ok ? "" : refusal(data, vars)};
  }

  // the session has `s` seconds left unless someone acts: warn before, check at the end
  function know(s) {
    clearTimeout(endTimer); clearTimeout(warnTimer); clearInterval(warnTimer);
    $("session-note").hidden = true;
    const left = Math.max(0, s);
    warnTimer = setTimeout(() => warn(Date.now() + Math.min(left, WARN_S) * 1000),
                           Math.max(0, left - WARN_S) * 1000);
    endTimer = setTimeout(check, left * 1000 + 250);
  }
  function warn(until) {
    const note = $("session-note");
    const show = () => {
      note.hidden = false;
      note.textContent = t("session_ends", {s: Math.max(0, Math.ceil((until - Date.now()) / 1000))});
    };
    show();
    warnTimer = setInterval(show, 1000);
  }
  async function check() {
    if (!session) return;
    const {ok, data} = await call("GET", "/api/staff/session");
    if (ok) know(data.ends_in_s);
    else if (session) endTimer = setTimeout(check, 2000);  // the locker did not answer: ask again
  }
  async function touched() {
    if (!session || Date.now() - lastTouch < TOUCH_EVERY_MS) return;
    lastTouch = Date.now();
    const {ok, data} = await call("POST", "/api/staff/session");
    if (ok) know(data.ends_in_s);
  }

  function store() {
    try {
      if (session) sessionStorage.setItem(KEY, JSON.stringify(session)); else sessionStorage.removeItem(KEY);
    } catch (e) { /* not kept across the two screens */ }
  }
  function showWork(on) {
    $("login").hidden = on; $("work").hidden = !on; $("logout").hidden = !on;
    for (const el of document.querySelectorAll("[data-when-in]")) el.hidden = !on || (
      el.dataset.whenIn === "technician" && session.role !== "technician");
  }
  function begin(data) {
    session = data;
    store(); hello(); showWork(true);
    know(data.ends_in_s);
    page.begin(session);
  }
  function ended(message) {
    session = null; store();
    clearTimeout(endTimer); clearTimeout(warnTimer); clearInterval(warnTimer);
    $("session-note").hidden = true;
    page.end();
    showWork(false);
    $("login-answer").textContent = message || "";
    $("staff").focus();
  }

  async function logIn(e) {
    e.preventDefault();
    const {ok, data, message} = await call("POST", "/api/staff/login", {
      staff: $("staff").value.trim(), code: $("totp").value.trim(), screen: page.screen});
    $("totp").value = "";
    if (!ok) { $("login-answer").textContent = message; return; }
    $("login-answer").textContent = "";
    const home = page.home(data.role);
    if (home) {  // a technician logs in to their own screen; a courier to the orders
      session = data; store(); location.assign(home); return;
    }
    begin(data);
  }

  // page: {title, screen, render(), begin(session), end(), home(role) -> URL or null}
  async function start(options) {
    page = options;
    const [text, learnt] = await Promise.all([
      fetch("/static/staff-text.json").then((r) => r.json()),
      Ask.learn().catch(() => ({bank: null})),
    ]);
    TEXT = text; info = learnt;
    let kept = null;
    try { kept = localStorage.getItem(LANG_KEY); } catch (e) { /* none */ }
    lang = kept in TEXT ? kept : (navigator.language || "").startsWith("fr") ? "fr" : "en";
    for (const l of ["en", "fr"]) $(`lang-${l}`).addEventListener("click", () => setLang(l));
    $("login").addEventListener("submit", logIn);
    $("logout").addEventListener("click", async () => {
      await call("POST", "/api/staff/logout");
      ended(t("logged_out"));
    });
    for (const kind of ["pointerdown", "keydown"]) document.addEventListener(kind, touched, true);
    applyLang();
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) { /* none */ }
    if (saved && saved.token) {
      session = saved;
      const {ok, data} = await call("GET", "/api/staff/session");
      if (ok) begin({...saved, ...data});
      else if (session) ended("");
    }
  }
  return {start, t, zone, refusal, call, touched, bank: () => info.bank,
          lang: () => lang, session: () => session};
})();
