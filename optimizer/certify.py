"""Certified portfolios: every portfolio is re-priced and checked against every limit at 1e-9
relative before it is reported.

HiGHS meets rows and bounds within its feasibility tolerances (1e-6 on integrality, 1e-7 on
rows), so a portfolio read straight off it can, once re-priced at exact stakes (``choose``
rounded, stakes inside ``[min_stake, max_stake]``), break a cap by ``equity_value * 1e-6``.
Certification therefore tries, in turn:

1. the portfolio as HiGHS gave it, re-priced exactly: almost always fine;
2. else the same chosen set with its stakes re-solved as an LP (``optimizer.polish``: a
   simplex vertex meets its active rows to rounding error);
3. else the chosen set cannot be priced within the limits at all (it was feasible only
   within HiGHS's tolerance): it is cut off with a no-good cut and the MIP is searched again
   with tight tolerances, up to :data:`MAX_REPAIRS` times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .check import violations
from .model import add_nogood, clear_cuts
from .polish import polish_stakes
from .schema import Scenario
from .session import Outcome, Session

# Relative tolerance of the certificate: no limit broken by more than this (CONTRACT: exact).
EXACT_TOL = 1e-9
MAX_REPAIRS = 20


@dataclass
class Certified:
    """A portfolio checked against every limit at :data:`EXACT_TOL`, and how it was got."""

    outcome: Outcome  # the run whose bound and termination stand
    stakes: dict[str, float] | None  # None: no portfolio could be certified
    repairs: list[str]  # what certification had to do, in words ([] = nothing)


def certify(session: Session, sc: Scenario, out: Outcome) -> Certified:
    """Re-price the run's portfolio exactly; repair it if HiGHS's tolerances let it break a
    limit (module docstring). The model is left as ``sc`` set it."""
    data = session.data
    repairs: list[str] = []
    cuts = 0
    try:
        while out.has_solution:
            stakes = session.stakes_of(out)
            if not violations(data, sc, stakes, rel_tol=EXACT_TOL):
                return Certified(out, stakes, repairs)
            chosen = out.x > 0.5
            stakes = _exact_stakes(session, sc, chosen)
            if stakes is not None and not violations(data, sc, stakes, rel_tol=EXACT_TOL):
                repairs.append("stakes re-solved exactly with the chosen projects fixed")
                return Certified(out, stakes, repairs)
            if cuts >= MAX_REPAIRS or session.time_up():
                break
            stakes = stakes or session.stakes_of(out)
            add_nogood(session.built, chosen)
            cuts += 1
            repairs.append(f"a chosen set that breaks a limit once priced exactly was "
                           f"excluded ({', '.join(sorted(stakes)) or 'empty'})")
            out = session.run(sc.solver, exact=True)
        return Certified(out, None, repairs)
    finally:
        if cuts:
            clear_cuts(session.built)


def _exact_stakes(session: Session, sc: Scenario, chosen: np.ndarray) -> dict[str, float] | None:
    """The chosen set's best stakes, re-solved exactly: the small stake LP of
    ``optimizer.polish`` at face value; under uncertainty (sampled limits, a stochastic
    objective) the session's own model with the set fixed and tight tolerances."""
    data = session.data
    if sc.uncertainty is not None:
        out = session.run_fixed(sc, chosen)
        return session.stakes_of(out) if out.has_solution else None
    rows = np.flatnonzero(chosen)
    polished = polish_stakes(data, sc, rows)
    if polished is None:
        return None
    ids = data.frame["project_id"].to_numpy()
    return {ids[i]: float(v) for i, v in zip(rows, polished, strict=True)}
