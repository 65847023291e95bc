"""A cold-chain certificate as one printable HTML page: the figures per compartment and the
temperature curve drawn against the zone's limits, for an inspector or a customer service desk.

Self-contained (inline SVG and CSS, no script), so it can be mailed, archived or printed as is;
the signed JSON text is reproduced at the end for whoever wants to check the signature.
"""

from __future__ import annotations

from html import escape
from typing import Any

from locker.domain.certificates import Certificate

WIDTH, HEIGHT, LEFT, BOTTOM = 640, 200, 44, 28


def render_html(certificate: Certificate) -> str:
    data = certificate.data
    title = f"Cold-chain certificate, order {data['order']}"
    signed = ("signed by the locker (Ed25519): " + certificate.signature[:32] + "…"
              if certificate.signature else "NOT SIGNED: the locker had no record key")
    state = ("issued when the order's doors closed after pickup" if data["final"]
             else "provisional: the bags are still inside")
    parts = "\n".join(_compartment(c) for c in data["compartments"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font: 14px/1.4 sans-serif; margin: 24px; color: #111; max-width: 720px; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 20px 0 4px; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 10px 2px 0; text-align: left; }}
.bad {{ color: #b00; font-weight: bold; }} .muted {{ color: #555; }}
pre {{ white-space: pre-wrap; word-break: break-all; font-size: 9px; color: #555; }}
svg text {{ font-size: 10px; }}
@media print {{ body {{ margin: 0; }} }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>Locker {escape(data['locker'])} · {escape(data['issued_at'])} · {escape(state)}<br>
<span class="muted">{escape(signed)}</span></p>
{parts}
<h2>Record</h2>
<p class="muted">HACCP rows {data['record']['first_row']}–{data['record']['last_row']}
(hash chain head {escape(str(data['record']['head'])[:16])}…);
check with <code>locker haccp verify</code>.</p>
<pre>{escape(certificate.body)}</pre>
</body></html>
"""


def _compartment(c: dict[str, Any]) -> str:
    limits = c["limits"]
    outside = c["minutes_above"] + c["minutes_below"]
    verdict = ("<span class=\"bad\">outside its limits for"
               f" {outside:g} min</span>" if outside else "within its limits throughout")
    probe = c["probe"]["name"] or "none (this zone is not monitored)"
    calibrated = c["probe"]["calibrated"] or "not recorded"
    excursions = ", ".join(
        f"{e['from']} → {e['to'] or 'ongoing'} (peak {e['peak_c']} °C)" for e in c["excursions"]
    ) or "none"
    rows = [
        ("Zone", f"{c['zone']} ({_limits(limits)})"),
        ("Inside", f"{c['from']} → {c['to']} ({c['minutes']:g} min)"),
        ("Temperature", f"min {_c(c['min_c'])}, max {_c(c['max_c'])}, mean {_c(c['mean_c'])}"
                        f" over {c['readings']} readings"),
        ("Verdict", verdict),
        ("Defrosts", str(c["defrosts"])), ("Door openings", str(c["door_openings"])),
        ("Probe faults", str(c["probe_faults"])), ("Excursions", excursions),
        ("Probe", f"{probe}; last calibrated: {calibrated}"),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{v if k == 'Verdict' else escape(v)}</td></tr>"
                    for k, v in rows)
    return (f"<h2>Compartment {escape(c['compartment'])}</h2><table>{table}</table>"
            + _curve(c))


def _limits(limits: dict[str, Any]) -> str:
    low = "" if limits["min_c"] is None else f"{limits['min_c']:g} °C to "
    text = f"{low}{limits['max_c']:g} °C"
    if limits["tolerated_max_c"] is not None:
        text += f", short rises to {limits['tolerated_max_c']:g} °C tolerated"
    return text


def _c(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} °C"


def _curve(c: dict[str, Any]) -> str:
    """The readings as a line over time, with the limits as dashed lines."""
    points = [(t, v) for t, v in c["curve"] if v is not None]
    if not points:
        return "<p class=\"muted\">No readings: there is no curve to draw.</p>"
    limits = c["limits"]
    marks = [v for v in (limits["min_c"], limits["max_c"]) if v is not None]
    low: float = min([v for _, v in points] + marks) - 1
    high: float = max([v for _, v in points] + marks) + 1
    span: float = max(1, c["curve"][-1][0], round(c["minutes"] * 60))
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - 8

    def x(t: float) -> float:
        return LEFT + plot_w * t / span

    def y(v: float) -> float:
        return 8 + plot_h * (high - v) / (high - low)

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    parts = [f'<polyline points="{line}" fill="none" stroke="#0a58ca" stroke-width="1.5"/>']
    for v in marks:
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}"'
                     ' stroke="#b00" stroke-dasharray="4 3"/>'
                     f'<text x="{LEFT + plot_w - 2}" y="{y(v) - 3:.1f}" text-anchor="end"'
                     f' fill="#b00">limit {v:g} °C</text>')
    for v in (low, (low + high) / 2, high):
        parts.append(f'<text x="{LEFT - 4}" y="{y(v) + 3:.1f}" text-anchor="end">{v:.0f} °C</text>')
    hours = span / 3600
    for i in range(5):
        t = span * i / 4
        label = f"{hours * i / 4:.1f} h" if hours >= 2 else f"{t / 60:.0f} min"
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">{label}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="8" y2="{8 + plot_h}" stroke="#333"/>'
                 f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{8 + plot_h}" y2="{8 + plot_h}"'
                 ' stroke="#333"/>')
    return (f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="temperature of'
            f' {escape(c["compartment"])} over time">{"".join(parts)}</svg>')
