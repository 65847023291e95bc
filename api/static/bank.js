// The locker bank as it is built (columns and levels from the config, level 1 at the bottom):
// one box a compartment; the ones of this order lit in their zone's colour (frozen ones with a
// snowflake) and marked with their door's state. Drawn as SVG elements with attributes only
// (the content security policy allows no inline style).
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
  // lit: Map of compartment id -> state ("waiting", "opening", "opened", "closed", "stuck")
  function draw(svg, bank, lit) {
    svg.textContent = "";
    if (!bank) return;
    // boxes as tall as the space given allows (a portrait screen has room), within reason
    const wide = bank.columns * (W + GAP) + GAP;
    const room = svg.clientWidth && svg.clientHeight ? svg.clientHeight / svg.clientWidth * wide : 80 * bank.levels;
    const H = Math.max(60, Math.min(160, (room - GAP) / bank.levels - GAP));
    svg.setAttribute("viewBox", `0 0 ${wide} ${bank.levels * (H + GAP) + GAP}`);
    for (const c of bank.compartments) {
      const x = GAP + (c.column - 1) * (W + GAP), y = GAP + (bank.levels - c.level) * (H + GAP);
      const state = lit.get(c.id);
      const g = add(svg, "g", {class: state ? `door lit ${c.zone} ${state}` : "door",
                               "data-id": c.id, "data-state": state || ""});
      add(g, "rect", {x, y, width: W, height: H, rx: 8});
      if (!state) continue;
      add(g, "text", {x: x + 8, y: y + 34}, c.id);
      if (c.zone === "frozen") snowflake(g, x + W - 17, y + H - 20, 12);
      add(g, "text", {x: x + 8, y: y + H - 10, class: "mark"},
          {opening: "…", closed: "✓", stuck: "!"}[state] || "");
    }
  }
  return {draw};
})();
