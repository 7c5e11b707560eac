"""Print the base run's HTML report to A4 in Debian's chromium (Playwright with
``executable_path``; never a downloaded browser) and say how many pages it takes and what
each page starts with.

    .venv/bin/python bench/bench_print.py [--scenario FILE] [--pdf out.pdf]

Needs /usr/bin/chromium (apt-get install chromium) and the test extras (playwright, pypdf).
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def print_pdf(html: Path, profile: Path) -> bytes:
    """The page printed to A4 by chromium, as the browser's own print dialog would."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = ctx.new_page()
            page.goto(html.as_uri(), wait_until="load")
            return page.pdf(format="A4", print_background=True)
        finally:
            ctx.close()


def page_texts(pdf: bytes) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--projects", default=str(ROOT / "inputs" / "projects.csv"))
    ap.add_argument("--scenario", default=str(ROOT / "inputs" / "scenarios" / "base.json"))
    ap.add_argument("--pdf", type=Path, default=None, help="also keep the PDF here")
    args = ap.parse_args()

    from optimizer import Optimizer, load_projects, load_scenario
    from optimizer.reports import analyse
    from optimizer.reports.html import render_html

    data = load_projects(args.projects)
    sc = load_scenario(args.scenario)
    opt = Optimizer(data)
    result = opt.solve(sc)
    body = render_html(result, sc, data, analyse(opt, sc, result))
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "report.html"
        html.write_bytes(body)
        pdf = print_pdf(html, Path(tmp) / "profile")
    if args.pdf:
        args.pdf.write_bytes(pdf)
    texts = page_texts(pdf)
    print(f"scenario {sc.name!r}: {len(texts)} A4 pages")
    for k, t in enumerate(texts, 1):
        lines = [x.strip() for x in t.splitlines() if x.strip()]
        print(f"page {k}: {len(t):>5} characters; starts {' | '.join(lines[:2])[:90]!r}")


if __name__ == "__main__":
    main()
