"""The README's promises hold: its Python example runs and its commands are what CI runs."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT


def test_readme_python_example_runs():
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("optimal ")


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"# 2\. run the tests\n(.+)\n", readme).group(1).strip()
    assert command in ci


def test_readme_example_output_is_what_the_first_command_prints():
    """README shows the base run's table; it must be what `python -m optimizer solve` prints
    today (HiGHS version and timings aside, which differ between machines and installs)."""
    text = (ROOT / "README.md").read_text()
    shown = re.search(r"Chinese owners\):\n\n```\n(.*?)```", text, re.S).group(1)
    p = subprocess.run([sys.executable, "-m", "optimizer", "solve"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr

    def norm(t: str) -> str:
        return re.sub(r"\(HiGHS [0-9.]+, build [0-9.]+ s, solve [0-9.]+ s\)", "(HiGHS)", t)

    assert norm(p.stdout) == norm(shown)
