"""Reports for investment committees: computing (``analysis``) apart from rendering
(``html``, ``excel``, ``text``).

    from optimizer import Optimizer, load_projects, load_scenario
    from optimizer.reports import analyse, render_html, render_xlsx

    opt = Optimizer(load_projects())
    sc = load_scenario()
    result = opt.solve(sc)
    analysis = analyse(opt, sc, result)              # the re-solves, once; storable JSON
    html = render_html(result, sc, opt.data, analysis)   # bytes
    xlsx = render_xlsx(result, sc, opt.data, analysis)   # bytes

A renderer never solves; :func:`analyse` is the only part that does.
"""

from .analysis import Analysis, AnalysisSettings, analyse

__all__ = ["Analysis", "AnalysisSettings", "analyse", "render_html", "render_text",
           "render_xlsx"]


def __getattr__(name: str):  # renderers import their libraries only when used
    if name == "render_html":
        from .html import render_html

        return render_html
    if name == "render_xlsx":
        from .excel import render_xlsx

        return render_xlsx
    if name == "render_text":
        from .text import render_text

        return render_text
    raise AttributeError(name)
