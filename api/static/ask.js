// How the screens ask the locker: each request says when it was asked (on the locker's own
// clock, learned from /api/kiosk) and gives up after a bounded wait. The locker refuses, doing
// nothing, a request it could not act on in time, so a person who gave up never finds a door
// opening behind them.
"use strict";
const Ask = (() => {
  let offsetMs = 0, timeoutMs = 10000;
  async function learn() {
    const sent = Date.now();
    const r = await fetch("/api/kiosk");
    const data = await r.json();
    offsetMs = data.now * 1000 - (sent + Date.now()) / 2;
    timeoutMs = (data.request_timeout_s || 10) * 1000;
    return data;
  }
  // fetch() with X-Asked-At and a timeout; throws an Error named "AbortError" when it gave up
  async function send(method, path, body, headers = {}) {
    const control = new AbortController();
    const timer = setTimeout(() => control.abort(), timeoutMs);
    try {
      return await fetch(path, {
        method, signal: control.signal,
        headers: {"Content-Type": "application/json", "X-Asked-At": String(Math.round(Date.now() + offsetMs)), ...headers},
        body: body === undefined ? undefined : JSON.stringify(body)});
    } finally { clearTimeout(timer); }
  }
  return {learn, send};
})();
