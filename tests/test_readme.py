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
