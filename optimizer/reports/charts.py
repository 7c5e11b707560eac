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


def offtake(floored: Sequence[tuple[str, float, float, str]],
            world: Sequence[tuple[str, float, float, str]],
            world_title: str = "share of world mine production") -> str:
    """Offtake against something meaningful, on an axis: each product with a security floor as
    a percentage of its floor (dashed line: 100 %), the others as a percentage of a stated
    reference such as world production. Rows are (label, offtake, reference, unit)."""
    panels = [(rows, title) for rows, title in (
        (floored, "against the scenario's floors"), (world, "as a share of " + world_title))
        if rows]
    with matplotlib.rc_context(RC):
        heights = [0.55 + 0.42 * len(rows) for rows, _ in panels] or [1.0]
        fig = Figure(figsize=(6.4, sum(heights) + 0.5 * len(heights)))
        h = fig.get_figheight()
        fig.subplots_adjust(left=1.55 / 6.4, right=1 - 0.3 / 6.4, top=1 - 0.35 / h,
                            bottom=0.5 / h, hspace=0.9)
        axes = fig.subplots(len(panels), 1, squeeze=False,
                            gridspec_kw={"height_ratios": heights})[:, 0] if panels else []
        for ax, (rows, title) in zip(axes, panels, strict=True):
            y = list(range(len(rows)))[::-1]
            share = [100.0 * v / ref if ref > 0 else 0.0 for _, v, ref, _ in rows]
            ax.barh(y, share, color=BAR_COLOUR, height=0.6)
            top = max([*share, 100.0 if rows is floored else 1.0])
            for yi, sh, (_, v, ref, unit) in zip(y, share, rows, strict=True):
                ax.text(sh + top * 0.01, yi, f" {v:,.0f} {unit} = {sh:,.1f} % of {ref:,.0f}",
                        va="center", fontsize=7.5)
            if rows is floored:
                ax.axvline(100, color=FLOOR_COLOUR, linestyle="--", linewidth=1.3)
            ax.set_yticks(y, [r[0] for r in rows])
            ax.set_xlim(0, top * 1.9)
            ax.set_ylim(-0.6, len(rows) - 0.4)
            ax.set_xlabel("% of the floor (dashed line: the floor)" if rows is floored
                          else f"% of {world_title}")
            ax.set_title("Offtake " + title)
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
             ylabel: str, title: str, base: tuple[float, float | None] | None = None,
             flat: Sequence[tuple[float, float]] = ()) -> str:
    """An efficient frontier: one point per solved row, labelled (e.g. with its project
    count); ``base``: the base scenario's point (x, objective or None: a line only);
    ``flat``: x ranges where the objective does not move (shaded)."""
    with matplotlib.rc_context(RC):
        fig = _fig(6.4, 3.0, left=0.9, bottom=0.55)
        ax = fig.add_subplot()
        for k, (lo, hi) in enumerate(flat):
            ax.axvspan(lo, hi, color="#e8e8e8", zorder=0,
                       label="flat stretch" if k == 0 else None)
        ax.plot(xs, ys, marker="o", color=BAR_COLOUR)
        for x, y, lab in zip(xs, ys, labels, strict=True):
            ax.annotate(lab, (x, y), textcoords="offset points", xytext=(0, 6), ha="center",
                        fontsize=7)
        if base is not None:
            ax.axvline(base[0], color="grey", linewidth=0.8, linestyle=":")
            if base[1] is not None:
                ax.plot([base[0]], [base[1]], marker="o", markersize=10, color=KABIL_COLOUR,
                        linestyle="none", label="the base scenario")
            else:
                ax.plot([], [], color="grey", linestyle=":", label="the base scenario")
        if base is not None or flat:
            ax.legend(fontsize=7.5, frameon=False, loc="lower right")
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


def heatmap(xs: Sequence[object], ys: Sequence[object], values: Sequence[Sequence[float | None]],
            xlabel: str, ylabel: str, title: str, unit: str) -> str:
    """A grid's objective by its two varied fields: ``values[i][j]`` at ``ys[i]`` (rows, the
    first field) and ``xs[j]`` (columns, the second); None (no portfolio) is grey, every cell
    is labelled with its value."""
    import numpy as np

    with matplotlib.rc_context(RC):
        nx, ny = max(1, len(xs)), max(1, len(ys))
        fig = _fig(6.4, min(8.0, 1.3 + 0.32 * ny), left=1.1, bottom=0.7, right=1.1)
        ax = fig.add_subplot()
        arr = np.ma.masked_invalid(np.array([[np.nan if v is None else v for v in row]
                                             for row in values], dtype=float).reshape(ny, nx))
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d5d5d5")
        im = ax.imshow(arr, cmap=cmap, aspect="auto", origin="upper")
        if nx * ny <= 400:  # beyond that the labels would not fit
            lo, hi = (float(arr.min()), float(arr.max())) if arr.count() else (0.0, 1.0)
            for i in range(ny):
                for j in range(nx):
                    v = values[i][j]
                    light = v is not None and hi > lo and (v - lo) / (hi - lo) < 0.5
                    ax.text(j, i, "n/a" if v is None else f"{v:,.0f}", ha="center",
                            va="center", fontsize=6.5, color="white" if light else "black")
        step_x = max(1, nx // 12)
        step_y = max(1, ny // 20)
        ax.set_xticks(range(0, nx, step_x), [_tick(x) for x in xs][::step_x])
        ax.set_yticks(range(0, ny, step_y), [_tick(y) for y in ys][::step_y])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.spines[["left", "bottom"]].set_visible(False)
        bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        bar.set_label(unit)
        ax.set_title(title)
        return _svg(fig)


def _tick(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


__all__ = ["annual", "budget_curve", "frontier", "heatmap", "histogram", "offtake", "risk",
           "selection", "stacked_spend"]
