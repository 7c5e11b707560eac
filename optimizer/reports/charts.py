"""Report charts drawn with matplotlib's SVG backend, returned as inline ``<svg>`` text.

Fully offline: no script, no font download, no external reference. Text stays text
(``svg.fonttype = none``) so the page can be searched and printed sharply. Figures are
created with :class:`matplotlib.figure.Figure` directly (no pyplot state).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

KABIL_COLOUR = "#e07b00"
US_COLOUR = "#1f4e9a"
BAR_COLOUR = "#4c7a8c"
CAP_COLOUR = "#c0392b"
FLOOR_COLOUR = "#c0392b"
RC = {"svg.fonttype": "none", "svg.hashsalt": "report", "font.size": 9,
      "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False,
      "axes.titlesize": 10, "axes.titleweight": "bold", "axes.titlelocation": "left"}

_MUSD = FuncFormatter(lambda v, _: f"{v:,.0f}")


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)


def _fig(width: float, height: float, left: float = 0.9, bottom: float = 0.45,
         top: float = 0.3, right: float = 0.25) -> Figure:
    """A figure with fixed margins in inches (one drawing pass: no layout engine, which
    measures every text several times)."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(left=left / width, right=1 - right / width,
                            bottom=bottom / height, top=1 - top / height)
        return fig


def stacked_spend(title: str, labels: Sequence[str], kabil: Sequence[float],
                  us: Sequence[float], cap: float | None = None,
                  cap_label: str = "") -> str:
    """Horizontal bars of spend per group, split KABIL / US partners, optional cap line."""
    with matplotlib.rc_context(RC):
        n = max(1, len(labels))
        fig = _fig(6.4, 1.1 + 0.3 * n, left=1.7)
        ax = fig.add_subplot()
        y = list(range(len(labels)))[::-1]
        ax.barh(y, kabil, color=KABIL_COLOUR, label="KABIL pays")
        ax.barh(y, us, left=kabil, color=US_COLOUR, label="US partners pay")
        for yi, a, b in zip(y, kabil, us, strict=True):
            ax.text(a + b, yi, f" {a + b:,.0f}", va="center", fontsize=8)
        ax.set_yticks(y, labels)
        if cap is not None:
            ax.axvline(cap, color=CAP_COLOUR, linestyle="--", linewidth=1.2, label=cap_label)
        ax.set_xlabel("US$ M")
        ax.xaxis.set_major_formatter(_MUSD)
        ax.set_title(title)
        ax.margins(x=0.12)
        ax.legend(loc="lower right", fontsize=8, frameon=False)
        return _svg(fig)


def offtake(names: Sequence[str], units: Sequence[str], values: Sequence[float],
            floors: Sequence[float | None]) -> str:
    """One row per product: the portfolio's offtake as a bar, its floor as a red tick. Each
    row has its own scale (products differ by orders of magnitude); the labels give the
    numbers."""
    with matplotlib.rc_context(RC):
        n = max(1, len(names))
        fig = _fig(6.4, 0.75 + 0.36 * n, left=1.9, bottom=0.15)
        ax = fig.add_subplot()
        y = list(range(len(names)))[::-1]
        for yi, v, fl, unit in zip(y, values, floors, units, strict=True):
            top = max(v, fl or 0.0) * 1.15 or 1.0
            ax.barh([yi], [v / top], color=BAR_COLOUR, height=0.6)
            text = f" {v:,.0f} {unit}" + (f"  (floor {fl:,.0f})" if fl else "")
            ax.text(max(v / top, 0.0), yi, text, va="center", fontsize=8)
            if fl:
                ax.vlines(fl / top, yi - 0.4, yi + 0.4, color=FLOOR_COLOUR, linestyle="--",
                          linewidth=1.5)
        ax.set_yticks(y, names)
        ax.set_xlim(0, 1.6)
        ax.set_xticks([])
        ax.spines["bottom"].set_visible(False)
        ax.set_title("Offtake entitlement against security floors")
        return _svg(fig)


def risk(avg: float, cap: float | None, points: Sequence[tuple[str, float, float]]) -> str:
    """Spend-weighted average risk against its cap; each project a dot sized by spend."""
    with matplotlib.rc_context(RC):
        fig = _fig(6.4, 1.9, left=0.3, bottom=0.9)
        ax = fig.add_subplot()
        ax.set_xlim(1, 10)
        if points:
            spend = [p[2] for p in points]
            big = max(spend) or 1.0
            ax.scatter([p[1] for p in points], [0.0] * len(points),
                       s=[20 + 280 * s / big for s in spend], color=BAR_COLOUR, alpha=0.45,
                       label="projects (area = spend)")
        ax.plot([avg], [0.0], marker="D", color="black", markersize=8, linestyle="none",
                label=f"average {avg:.2f}")
        if cap is not None:
            ax.axvline(cap, color=CAP_COLOUR, linestyle="--", linewidth=1.2,
                       label=f"cap {cap:g}")
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_xlabel("risk score (1 best, 10 worst)")
        ax.set_title("Spend-weighted risk against its cap")
        ax.legend(loc="upper left", fontsize=8, frameon=False, ncol=3,
                  bbox_to_anchor=(0, -0.7))
        return _svg(fig)


def annual(spend: Sequence[float], caps: Sequence[float | None]) -> str:
    """Spend by plan year, with each year's cap as a red tick."""
    with matplotlib.rc_context(RC):
        n = max(1, len(spend))
        fig = _fig(6.4, 2.4, left=0.8)
        ax = fig.add_subplot()
        x = list(range(n))
        ax.bar(x, spend, color=BAR_COLOUR, width=0.6, label="spend")
        for xi, v in zip(x, spend, strict=True):
            ax.text(xi, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        first = True
        for xi, c in zip(x, caps, strict=False):
            if c is not None:
                ax.hlines(c, xi - 0.4, xi + 0.4, color=CAP_COLOUR, linestyle="--",
                          linewidth=1.5, label="cap" if first else None)
                first = False
        ax.set_xticks(x, [f"plan year {k + 1}" for k in x])
        ax.set_ylabel("US$ M")
        ax.yaxis.set_major_formatter(_MUSD)
        ax.set_title("Spend by plan year against annual caps")
        ax.margins(y=0.15)
        ax.legend(fontsize=8, frameon=False)
        return _svg(fig)


def budget_curve(budgets: Sequence[float], objectives: Sequence[float | None], here: float,
                 ylabel: str) -> str:
    """The objective re-solved at each budget (a step function), the scenario's budget marked."""
    with matplotlib.rc_context(RC):
        fig = _fig(6.4, 2.6, left=0.8, bottom=0.55)
        ax = fig.add_subplot()
        pts = [(b, o) for b, o in zip(budgets, objectives, strict=True) if o is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=BAR_COLOUR)
            for b, o in pts:
                if b == here:
                    ax.plot([b], [o], marker="o", markersize=9, color=KABIL_COLOUR,
                            label="this scenario")
        ax.axvline(here, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("total budget, US$ M")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_formatter(_MUSD)
        ax.set_title("Objective at other budgets (each point a re-solve)")
        ax.legend(fontsize=8, frameon=False)
        return _svg(fig)


def frontier(xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], xlabel: str,
             ylabel: str, title: str) -> str:
    """An efficient frontier: one point per solved row, labelled (e.g. with its project
    count)."""
    with matplotlib.rc_context(RC):
        fig = _fig(6.4, 3.0, left=0.9, bottom=0.55)
        ax = fig.add_subplot()
        ax.plot(xs, ys, marker="o", color=BAR_COLOUR)
        for x, y, lab in zip(xs, ys, labels, strict=True):
            ax.annotate(lab, (x, y), textcoords="offset points", xytext=(0, 6), ha="center",
                        fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_formatter(_MUSD)
        ax.yaxis.set_major_formatter(_MUSD)
        ax.margins(y=0.15)
        ax.set_title(title)
        return _svg(fig)


def selection(ids: Sequence[str], shares: Sequence[float], core_share: float) -> str:
    """How often each project is chosen (share of the rows with a portfolio)."""
    with matplotlib.rc_context(RC):
        n = max(1, len(ids))
        fig = _fig(6.4, 0.9 + 0.22 * n, left=2.3, bottom=0.45)
        ax = fig.add_subplot()
        y = list(range(len(ids)))[::-1]
        colours = [KABIL_COLOUR if s >= core_share else BAR_COLOUR for s in shares]
        ax.barh(y, [s * 100 for s in shares], color=colours, height=0.7)
        ax.axvline(core_share * 100, color=CAP_COLOUR, linestyle="--", linewidth=1.2)
        ax.set_yticks(y, ids, fontsize=7)
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of portfolios that choose it (orange: robust core)")
        ax.set_title("Selection frequency")
        return _svg(fig)


def histogram(bins: Sequence[tuple[float, float, int]], xlabel: str, title: str,
              marker: float | None = None, marker_label: str = "") -> str:
    """A histogram from (low, high, count) bins, with an optional marked value."""
    with matplotlib.rc_context(RC):
        fig = _fig(6.4, 2.5, left=0.7, bottom=0.55)
        ax = fig.add_subplot()
        for lo, hi, c in bins:
            ax.bar(lo, c, width=hi - lo, align="edge", color=BAR_COLOUR, edgecolor="white")
        if marker is not None:
            ax.axvline(marker, color=CAP_COLOUR, linestyle="--", linewidth=1.2,
                       label=marker_label)
            ax.legend(fontsize=8, frameon=False)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("draws")
        ax.xaxis.set_major_formatter(_MUSD)
        ax.set_title(title)
        return _svg(fig)


__all__ = ["annual", "budget_curve", "frontier", "histogram", "offtake", "risk", "selection",
           "stacked_spend"]
