"""CSV cells a spreadsheet would run as a formula are written as text (issue 14, item 4), in
the CLI's batch folder as in the service's results.csv (tests/test_access.py)."""

from __future__ import annotations

import csv
import json

import pytest

from optimizer.batch.runner import run_to_folder
from optimizer.csvsafe import cell, uncell

from .conftest import TINY_ROWS


@pytest.mark.parametrize("raw, written", [
    ('=HYPERLINK("http://x.invalid","y")', '\'=HYPERLINK("http://x.invalid","y")'),
    ("+1+2", "'+1+2"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"), ("-", "'-"),
    ("-12.5", "-12.5"), ("-1e5", "-1e5"), ("-.5", "-.5"), ("base", "base"), ("", ""),
    ("a=b", "a=b"), (12.5, 12.5), (-3, -3), (None, None),
])
def test_cell(raw, written):
    assert cell(raw) == written
    if isinstance(raw, str):
        assert uncell(cell(raw)) == raw


def test_cli_batch_folder_writes_formula_names_as_text(tmp_path):
    projects = tmp_path / "p.csv"
    with projects.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(TINY_ROWS[0]))
        w.writeheader()
        w.writerows(TINY_ROWS)
    evil = '=HYPERLINK("http://x.invalid","click")'
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "name": "formula", "base": {"budget_musd": 120, "solver": {"time_limit_s": 10}},
        "projects": str(projects),
        "scenarios": [{"name": evil}, {"name": "@cmd", "budget_musd": 60}]}))
    out = tmp_path / "out"
    run_to_folder(spec, out=out, workers=0, progress=False)
    text = (out / "results.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["name"] for r in rows] == ["'" + evil, "'@cmd"]
    assert rows[0]["status"] == "optimal" and float(rows[0]["objective"]) == pytest.approx(47)
    for line in text.splitlines()[1:]:
        for c in next(csv.reader([line])):
            assert not c.startswith(("=", "+", "@", "\t", "\r")), line
