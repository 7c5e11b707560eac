"""What runs in a worker process (local or Dask): a chunk of batch rows on this process's
built model. Nothing here knows which executor called it."""

from __future__ import annotations

import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..check import broken_limits, structural
from ..data import load_scenario
from ..errors import InputError
from ..limits import holding
from ..schema import WITH_PORTFOLIO, BasePortfolioOnDraw, BatchRow, Scenario
from ..solve import Optimizer
from .draws import evaluate, make_draw, perturb
from .reuse import loose_first, reusable
from .spec import MonteCarloSpec, Task

REUSE_WINDOW = 64  # recent rows a worker compares a new row with
# The rows this worker process solved for the batch it is working on (one batch at a time
# keeps its memory), across its chunks: batch token -> (scenario, row), newest last.
_SOLVED: dict[str, deque[tuple[Scenario, dict[str, Any]]]] = {}


@dataclass(frozen=True)
class ChunkContext:
    """What every chunk of one batch shares (small, picklable)."""

    diagnose: bool = True
    monte_carlo: MonteCarloSpec | None = None
    base_stakes: dict[str, float] | None = None  # Monte Carlo: the unperturbed optimum
    frontier: bool = False  # pass each point's portfolio on to the next (looser) point
    grid: dict[str, list[Any]] | None = None  # the grid's values (to order a chunk loose first)
    reuse: bool = True  # answer a row with a looser row's portfolio when it meets its limits
    token: str = ""  # one batch run: rows it solved in this worker may answer its later rows
    # rows other workers finished (scenario, row in brief), sent along with a chunk
    priors: tuple[tuple[dict[str, Any], dict[str, Any]], ...] = ()

    @property
    def mutable_data(self) -> bool:
        return self.monte_carlo is not None


def solve_tasks(opt: Optimizer, ctx: ChunkContext, tasks: list[Task]) -> list[dict[str, Any]]:
    """Solve ``tasks`` in order on ``opt``; one row per task, never an exception."""
    rows = []
    previous: dict[str, float] | None = None
    base = opt.base_data
    reuse = ctx.reuse and ctx.monte_carlo is None and not ctx.frontier
    if reuse:
        tasks = loose_first(tasks, ctx.grid)
        if ctx.token not in _SOLVED:
            _SOLVED.clear()
            _SOLVED[ctx.token] = deque(maxlen=REUSE_WINDOW)
        solved = _SOLVED[ctx.token]
        seen = {row["index"] for _, row in solved}
        for sc, row in ctx.priors:
            if row["index"] not in seen:
                solved.appendleft((load_scenario(sc), row))
    try:
        for task in tasks:
            t0 = time.perf_counter()
            try:
                if reuse:
                    row = _reuse_or_solve(opt, ctx, task, solved)
                else:
                    row = _solve_one(opt, ctx, task, base, previous)
            except InputError as exc:  # validated before the batch: should not happen
                row = _failed(task, f"invalid input: {exc}")
            except Exception as exc:  # noqa: BLE001 - a failed row, never a failed batch
                row = _failed(task, f"{type(exc).__name__}: {exc}",
                              traceback.format_exc(limit=5))
            row["row_wall_s"] = round(time.perf_counter() - t0, 6)
            rows.append(row)
            if ctx.frontier and row.get("status") in WITH_PORTFOLIO:
                previous = {p["project_id"]: p["stake"] for p in row["selected"]}
    finally:
        opt.use_data(base)
    return rows


def _reuse_or_solve(opt: Optimizer, ctx: ChunkContext, task: Task,
                    solved: deque[tuple[Scenario, dict[str, Any]]]) -> dict[str, Any]:
    sc = load_scenario(task.scenario)
    for prior_sc, prior in reversed(solved):
        stakes = reusable(opt.data, (prior_sc, prior), sc)
        if stakes is not None:
            res = opt.result_for(
                sc, stakes, status=prior["status"], bound=prior["best_bound"],
                termination=prior["solver"]["termination"],
                notes=[f"the portfolio of row {prior['index']}, a scenario at least as loose "
                       "in every limit, meets this row's limits exactly: answered without a "
                       "solve (optimal within that row's gap; its bound holds here)"])
            return BatchRow.of(task.index, res, task.scenario,
                               reused_from=prior["index"]).dump()
    row = _solve_one(opt, ctx, task, opt.base_data, None)
    if row.get("status") in WITH_PORTFOLIO:
        solved.append((sc, row))
    return row


def _solve_one(opt: Optimizer, ctx: ChunkContext, task: Task, base,
               previous: dict[str, float] | None) -> dict[str, Any]:
    if task.draw is None:
        res = opt.solve(task.scenario, diagnose=ctx.diagnose,
                        candidates=[previous] if previous else ())
        return BatchRow.of(task.index, res, task.scenario).dump()
    mc = ctx.monte_carlo
    draw = make_draw(mc, base, task.draw)
    data = perturb(base, draw)
    opt.use_data(data)
    # a draw is one realisation: its portfolio is chosen at that draw's face value (perfect
    # information), whatever sample the base scenario chose the base portfolio on
    sc = load_scenario(task.scenario).at_face_value()
    more: dict[str, Any] = {"draw": draw.summary()}
    if ctx.base_stakes is not None:
        value = evaluate(data, sc, ctx.base_stakes)
        broken = broken_limits(data, sc, ctx.base_stakes)
        structure = structural(data, holding(data, ctx.base_stakes))
        held = [p for p in ctx.base_stakes if data.unavailable is not None
                and data.unavailable[data.positions[p]]]
        more["base_portfolio"] = BasePortfolioOnDraw(
            objective=value, regret=None, meets_limits=not (broken or structure),
            broken=(structure + [b.text for b in broken])[:5],
            breaches=[{"path": b.path, "level": b.level, "limit": b.limit,
                       "excess": b.excess} for b in broken if b.limit is not None],
            disrupted_projects=held)
    if mc.reoptimize:
        row = BatchRow.of(task.index, opt.solve(sc, diagnose=ctx.diagnose), task.scenario,
                          **more)
    else:
        row = BatchRow(index=task.index, status="evaluated", scenario=task.scenario, **more)
    if row.base_portfolio is not None and row.objective is not None:
        row.base_portfolio.regret = row.objective - row.base_portfolio.objective
    return row.dump()


def _failed(task: Task, error: str, trace: str | None = None) -> dict[str, Any]:
    return BatchRow.failure(task.index, task.scenario, error, trace).dump()
