"""``python -m optimizer report``: real files, a real subprocess, the contract's exit codes."""

from __future__ import annotations

import io
import json

import openpyxl
import pandas as pd
import pytest

from .conftest import TINY_ROWS
from .test_cli import run, write


@pytest.fixture
def tiny_csv(tmp_path):
    path = tmp_path / "projects.csv"
    pd.DataFrame(TINY_ROWS).to_csv(path, index=False)
    return path


def test_html_report_exit_0(tiny_csv, tmp_path):
    sc = write(tmp_path, "s.json", {"name": "demo", "budget_musd": 120,
                                    "solver": {"mip_gap": 1e-9}})
    out = tmp_path / "r.html"
    p = run("report", "--projects", str(tiny_csv), "--scenario", str(sc), "--format", "html",
            "--out", str(out))
    assert p.returncode == 0, p.stderr
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "Back 2 projects in 2 countries" in text
    assert p.stdout.startswith("Scenario 'demo': Back 2 projects")
    assert f"Report written to {out}" in p.stdout
    assert not list(tmp_path.glob(".r.html.*"))  # no temporary file left behind


def test_xlsx_report_names_the_chosen_projects(tiny_csv, tmp_path):
    sc = write(tmp_path, "s.json", {"budget_musd": 120, "solver": {"mip_gap": 1e-9}})
    out = tmp_path / "r.xlsx"
    p = run("report", "--projects", str(tiny_csv), "--scenario", str(sc), "--format", "xlsx",
            "--out", str(out), "--alternatives", "0")
    assert p.returncode == 0, p.stderr
    wb = openpyxl.load_workbook(io.BytesIO(out.read_bytes()), data_only=True)
    assert len(wb.sheetnames) >= 4
    ids = [r[0] for r in wb["Portfolio"].iter_rows(min_row=2, values_only=True)]
    assert ids[:2] == ["A", "C"] and ids[2] == "Total"
    cost = [r[6] for r in wb["Portfolio"].iter_rows(min_row=2, max_row=3, values_only=True)]
    assert sum(cost) == 120.0 or abs(sum(cost) - 120.0) < 1e-6


def test_infeasible_run_exit_3_still_writes_the_report(tiny_csv, tmp_path):
    sc = write(tmp_path, "s.json", {"budget_musd": 50, "min_output_t": {"tantalum": 50}})
    out = tmp_path / "r.html"
    p = run("report", "--projects", str(tiny_csv), "--scenario", str(sc), "--format", "html",
            "--out", str(out))
    assert p.returncode == 3, p.stderr
    text = out.read_text(encoding="utf-8")
    assert "Why no portfolio is possible" in text
    assert "raise budget_musd from 50 to 60 MUSD" in text
    assert "fix: raise budget_musd from 50 to 60 MUSD" in p.stdout


def test_bad_input_exit_2_and_no_file(tiny_csv, tmp_path):
    sc = write(tmp_path, "s.json", {"budget_musd": 50, "budgett": 1})
    out = tmp_path / "r.html"
    p = run("report", "--projects", str(tiny_csv), "--scenario", str(sc), "--format", "html",
            "--out", str(out))
    assert p.returncode == 2 and p.stdout == ""
    assert "scenario field 'budgett': unknown field" in p.stderr
    assert not out.exists()
    p = run("report", "--format", "html", "--out", str(tmp_path / "missing" / "r.html"))
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = run("report", "--format", "pdf", "--out", str(out))
    assert p.returncode == 2 and "invalid choice" in p.stderr


def test_report_of_the_shipped_base_run(tmp_path):
    out = tmp_path / "base.html"
    p = run("report", "--format", "html", "--out", str(out))
    assert p.returncode == 0, p.stderr
    solved = run("solve", "--format", "json")
    result = json.loads(solved.stdout)
    text = out.read_text(encoding="utf-8")
    assert f"US${result['totals']['cost_musd']:,.0f} M" in text
    for s in result["selected"]:
        assert s["project_id"] in text


def test_readme_reports_example_runs(tmp_path):
    import re
    import subprocess
    import sys

    from .conftest import ROOT

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Reports"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "base.html").read_bytes().startswith(b"<!DOCTYPE html>")
    assert (tmp_path / "base.xlsx").read_bytes()[:2] == b"PK"
