// The locker bank as it is built (columns and levels from the config, level 1 at the bottom):
// one box a compartment; the ones of this order lit in their zone's colour (frozen ones with a
// snowflake) and marked with their door's state. Drawn as SVG elements with attributes only
// (the content security policy allows no inline style). The technician's screen draws every
// compartment (`options.every`) and lets each be chosen (`options.pick`).
"use strict";
const Bank = (() => {
  const NS = "http://www.w3.org/2000/svg", W = 100, GAP = 10;
  function add(parent, name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }
  function snowflake(g, cx, cy, r) {
    for (const deg of [30, 90, 150]) {
      const a = deg * Math.PI / 180, dx = r * Math.cos(a), dy = r * Math.sin(a);
      add(g, "line", {x1: cx - dx, y1: cy - dy, x2: cx + dx, y2: cy + dy, class: "flake"});
    }
  }
  // lit: Map of compartment id -> state ("waiting", "opening", "opened", "closed", "stuck",
  // "did_not_unlock", "jammed", "kept").
  // options (all optional): every(c) -> {state, mark, label} draws the compartments not lit too,
  // each with its id, as class "every"; pick(id) makes each box a button named by its label;
  // chosen: the id of the box shown pressed.
  function draw(svg, bank, lit, options = {}) {
    svg.textContent = "";
    if (!bank) return;
    // boxes as tall as the space given allows (a portrait screen has room), within reason
    const wide = bank.columns * (W + GAP) + GAP;
    const room = svg.clientWidth && svg.clientHeight ? svg.clientHeight / svg.clientWidth * wide : 80 * bank.levels;
    const H = Math.max(60, Math.min(160, (room - GAP) / bank.levels - GAP));
    svg.setAttribute("viewBox", `0 0 ${wide} ${bank.levels * (H + GAP) + GAP}`);
    for (const c of bank.compartments) {
      const x = GAP + (c.column - 1) * (W + GAP), y = GAP + (bank.levels - c.level) * (H + GAP);
      let state = lit.get(c.id), mark, label, kind = "lit";
      if (!state && options.every) {
        ({state, mark, label} = options.every(c));
        kind = "every";
      }
      const g = add(svg, "g", {class: state ? `door ${kind} ${c.zone} ${state}` : "door",
                               "data-id": c.id, "data-state": state || ""});
      if (options.pick) {
        g.setAttribute("role", "button");
        g.setAttribute("tabindex", "0");
        g.setAttribute("aria-label", label || c.id);
        g.setAttribute("aria-pressed", String(options.chosen === c.id));
        g.addEventListener("click", () => options.pick(c.id));
        g.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); options.pick(c.id); }
        });
      }
      add(g, "rect", {x, y, width: W, height: H, rx: 8});
      if (!state) continue;
      add(g, "text", {x: x + 8, y: y + 34}, c.id);
      if (bank.zones?.[c.zone]?.freezing) snowflake(g, x + W - 17, y + H - 20, 12);
      // a short box: the mark beside the id, not on it
      const low = H >= 80;
      add(g, "text", {x: low ? x + 8 : x + 62, y: low ? y + H - 10 : y + 34, class: "mark"},
          mark ?? ({opening: "…", closed: "✓", stuck: "!", did_not_unlock: "!", jammed: "!",
                    kept: "✕"}[state] || ""));
    }
  }
  return {draw};
})();
