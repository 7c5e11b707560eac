"""Portfolio optimisation for overseas critical-mineral co-investment (KABIL + US partners).

Library API::

    from optimizer import load_projects, load_scenario, optimize, Optimizer
    result = optimize("inputs/projects.csv", "inputs/scenarios/base.json")
"""

from .data import ProjectData, load_projects, load_scenario
from .errors import InputError, Problem
from .schema import Result, Scenario
from .solve import Optimizer, SolutionCheckError, optimize

__all__ = ["InputError", "Optimizer", "Problem", "ProjectData", "Result", "Scenario",
           "SolutionCheckError", "load_projects", "load_scenario", "optimize"]
