"""A short plain-text summary of a run's report, for the terminal (``python -m optimizer
report`` prints it after writing the file)."""

from __future__ import annotations

from ..data import ProjectData
from ..schema import Result, Scenario
from .analysis import Analysis
from .facts import facts, num, signed


def render_text(result: Result, scenario: Scenario, data: ProjectData,
                analysis: Analysis | None = None, width: int = 100) -> str:
    """A few lines: the answer, binding limits, how sure, the headline sensitivities and the
    nearest alternative."""
    import textwrap

    fx = facts(result, scenario, data, analysis)
    lines = textwrap.wrap(f"Scenario {scenario.name!r}: {fx.answer}", width)
    bind = [row for row in fx.limits if row.binding]
    if bind:
        lines += textwrap.wrap("Binding limits: " + "; ".join(
            f"{row.field} ({row.limit_text})" for row in bind) + ".", width)
    for c in fx.diagnosis:
        lines.append(f"  conflict: {c}")
    for f in fx.fixes:
        lines.append(f"  fix: {f}")
    r = result
    if fx.solved:
        sure = f"How sure: {fx.status_text}"
        if r.best_bound is not None:
            sure += f" (objective {num(r.objective, 2)}, bound {num(r.best_bound, 2)}"
            sure += f", gap {r.mip_gap:.2e})" if r.mip_gap is not None else ")"
        lines.append(sure + ".")
    a = analysis
    if a is not None and fx.solved:
        if a.budget is not None:
            b = a.budget
            parts = []
            if b.minus is not None and b.minus.change is not None:
                parts.append(f"-{b.step_musd:,.6g} MUSD: {signed(b.minus.change)}")
            if b.plus is not None and b.plus.change is not None:
                parts.append(f"+{b.step_musd:,.6g} MUSD: {signed(b.plus.change)}")
            if parts:
                lines.append("Budget: " + ", ".join(parts) + ".")
        for lv in a.limits:
            to = f"{lv.relaxed_to:,.0f}" if abs(lv.relaxed_to) >= 1000 else \
                f"{lv.relaxed_to:.4g}"
            lines.append(f"Relax {lv.field} to {to}: {signed(lv.gain)}.")
        top = [e for e in a.regrets if e.loss is not None][:3]
        if top:
            lines += textwrap.wrap("Most valuable choices (objective lost if excluded): "
                                   + ", ".join(f"{e.project_id} {e.loss:,.1f}" for e in top)
                                   + ".", width)
        if a.alternatives:
            alt = a.alternatives[0]
            diff = "; ".join(filter(None, ["adds " + ", ".join(alt.added) if alt.added else "",
                                           "drops " + ", ".join(alt.dropped)
                                           if alt.dropped else ""]))
            lines += textwrap.wrap(
                f"Nearest alternative ({len(a.alternatives)} within "
                f"{a.settings.alternative_slack:.0%}): {alt.loss:,.2f} below ({diff}).", width)
        elif a.alternatives_note:
            lines += textwrap.wrap(a.alternatives_note, width)
        lines.append(f"{a.resolves} re-solves in {a.resolve_s:.2f} s.")
    return "\n".join(lines) + "\n"


__all__ = ["render_text"]
