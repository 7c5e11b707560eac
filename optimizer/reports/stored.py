"""Reports of stored runs: everything from JSON (the result, the scenario, the dataset's rows
and the analysis computed once when the run was reported first), nothing solved again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..data import ProjectData, load_projects, load_scenario
from ..schema import Result
from .analysis import Analysis


def render_stored(fmt: Literal["html", "xlsx"], result: Mapping[str, Any],
                  scenario: Mapping[str, Any], projects: ProjectData | Sequence[Mapping],
                  analysis: Mapping[str, Any] | None = None, *,
                  generated: str | None = None) -> bytes:
    """The report of a stored run from its stored JSON. ``projects`` is the run's dataset
    (validated rows or a ProjectData already loaded); ``analysis`` the stored
    :class:`~optimizer.reports.analysis.Analysis` (None: the report says it was not
    computed)."""
    res = Result.model_validate(dict(result))
    sc = load_scenario(dict(scenario))
    data = projects if isinstance(projects, ProjectData) else load_projects(list(projects))
    if data.sha256 != res.provenance.dataset_sha256:
        raise ValueError("the dataset given is not the one this run was solved on")
    an = Analysis.model_validate(dict(analysis)) if analysis is not None else None
    if fmt == "html":
        from .html import render_html

        return render_html(res, sc, data, an, generated=generated)
    if fmt == "xlsx":
        from .excel import render_xlsx

        return render_xlsx(res, sc, data, an)
    raise ValueError(f"unknown report format {fmt!r}")


__all__ = ["render_stored"]
