"""simkit: simulate and analyse user connections across pods of an enterprise chat network.

The core (rules, population, events, the per-event engine) is plain Python and numpy;
tables, graphs and charts live in modules that import pandas, networkx or matplotlib only
when used, so ``import simkit`` stays light.

Examples
--------
>>> import simkit
>>> pop = simkit.Population.from_records(
...     pods=[simkit.Pod(1, "bank"), simkit.Pod(2, "fund")],
...     users=[simkit.User(10, 1), simkit.User(20, 2)],
...     crosspod=[(1, 2)],
... )
>>> simkit.Engine(pop).connect(10, 20).code
200
"""

from __future__ import annotations

__version__ = "0.1.0"

from simkit.engine import Answer, Engine, UserConnection, replay
from simkit.errors import InputError, RunDirError, ScenarioError, SimkitError
from simkit.events import Events, Policy
from simkit.population import Pod, Population, User
from simkit.results import Connections, Outcomes, Replay
from simkit.rules import Action, Reason, Status
from simkit.runs import Run, read_run, replay_run

__all__ = [
    "Action",
    "Answer",
    "Connections",
    "Engine",
    "Events",
    "InputError",
    "Outcomes",
    "Pod",
    "Policy",
    "Population",
    "Reason",
    "Replay",
    "Run",
    "RunDirError",
    "ScenarioError",
    "SimkitError",
    "Status",
    "User",
    "UserConnection",
    "__version__",
    "read_run",
    "replay",
    "replay_run",
]
