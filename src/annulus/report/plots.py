"""The trial report's figures, drawn with matplotlib as SVG (vector in the PDF; no Django).

- ``mean_change(result, ...)``: the change from baseline over the visits, one line per arm (or one
  pooled line in a blinded report) with its 95 % CI: the MMRM's LS-means where the model was
  fitted, otherwise the observed means.
- ``forest(result, ...)``: each dose minus placebo at the primary visit, with its CI and the
  Dunnett-adjusted CI.

The SVG is the same bytes for the same input (no date in its metadata, fixed element ids), so a
report built twice from the same datasets is identical. Text is drawn as paths, so the file needs
no font where it is shown; Chinese labels use the installed Chinese font (``fonts``).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

from annulus.report.fonts import chinese_fonts

COLOURS = ("#5b6770", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
POOLED_COLOUR = "#1d2733"


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "Annulus"})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG goes inline in HTML


def _context():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ctx = plt.rc_context({"font.family": ["DejaVu Sans", *chinese_fonts()], "svg.hashsalt": "annulus-report",
                          "svg.fonttype": "path", "font.size": 9, "axes.spines.top": False,
                          "axes.spines.right": False})
    return plt, ctx


def _points(result: dict) -> dict:
    """arm (None when pooled) -> list of (visit, estimate, lower, upper), LS-means if fitted."""
    rows = result["lsmeans"] or result["observed"]
    key = "estimate" if result["lsmeans"] else "mean"
    out: dict = {}
    for r in rows:
        if r.get(key) is None:
            continue
        out.setdefault(r.get("arm"), []).append((r["visit"], r[key], r.get("lower"), r.get("upper")))
    return out


def mean_change(result: dict, *, words: Mapping[str, str], visit_names: Mapping[str, str],
                arm_names: Mapping[str, str]) -> str:
    """Mean change from baseline ± 95 % CI by arm over the visits, as inline SVG."""
    plt, ctx = _context()
    order = list(result["visits"])
    points = _points(result)
    arms = [None] if result.get("arms") is None else list(result["arms"])
    spread = 0.08  # the arms side by side at each visit, so that their intervals do not hide each other
    with ctx, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        fig, ax = plt.subplots(figsize=(7.2, 4.2))
        for i, arm in enumerate(arms):
            pts = sorted(points.get(arm, []), key=lambda p: order.index(p[0]) if p[0] in order else 99)
            if not pts:
                continue
            shift = (i - (len(arms) - 1) / 2) * spread
            xs = [order.index(v) + shift for v, *_ in pts]
            ys = [e for _, e, _, _ in pts]
            lo = [e - (lo if lo is not None else e) for _, e, lo, _ in pts]
            hi = [(hi if hi is not None else e) - e for _, e, _, hi in pts]
            colour = POOLED_COLOUR if arm is None else COLOURS[i % len(COLOURS)]
            label = words["all_participants"] if arm is None else arm_names.get(arm, arm)
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", markersize=3.5, linewidth=1.4, capsize=2.5,
                        color=colour, label=label)
        ax.axhline(0, color="#999999", linewidth=0.8)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([visit_names.get(v, v) for v in order], fontsize=7.5)
        ax.set_xlabel(words["visit_after_treatment"])
        ax.set_ylabel(words["change_from_baseline"].format(unit=result.get("unit") or "").strip())
        ax.grid(axis="y", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # below the axes, where it hides no interval
            ax.legend(fontsize=7.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                      ncol=2 if len(arms) > 1 else 1)
        fig.tight_layout()
        return _svg(fig)


def forest(result: dict, *, words: Mapping[str, str], arm_names: Mapping[str, str]) -> str | None:
    """Each dose minus placebo at the primary visit: estimate with its CI (thick) and its Dunnett-
    adjusted CI (thin); None when there is nothing to compare."""
    rows = [r for r in result.get("contrasts") or [] if r["visit"] == result["primary_visit"]
            and r.get("estimate") is not None]
    if not rows:
        return None
    plt, ctx = _context()
    with ctx, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        fig, ax = plt.subplots(figsize=(7.2, 0.55 * len(rows) + 1.1))
        for i, r in enumerate(reversed(rows)):
            if r.get("lower_dunnett") is not None:
                ax.plot([r["lower_dunnett"], r["upper_dunnett"]], [i, i], color="#7a8791", linewidth=1)
            ax.plot([r["lower"], r["upper"]], [i, i], color="#1f77b4", linewidth=3, solid_capstyle="butt")
            ax.plot([r["estimate"]], [i], marker="D", color="#0b3d66", markersize=5)
        ax.axvline(0, color="#999999", linewidth=0.8)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([arm_names.get(r["arm"], r["arm"]) for r in reversed(rows)], fontsize=8)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel(words["difference_vs_control"].format(control=arm_names.get(rows[0]["control"],
                                                                                  rows[0]["control"])))
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        return _svg(fig)
