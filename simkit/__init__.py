"""simkit: simulate and analyse user connections across pods of an enterprise chat network.

The core (rules, population, events, the per-event engine) is plain Python and numpy;
files, tables, graphs and charts live in edge modules (:mod:`simkit.io.runs`,
:mod:`simkit.analysis`, ...) and whole jobs in :mod:`simkit.pipeline`; these are imported
only when one of their names is first used, so ``import simkit`` loads no pyarrow, pandas,
networkx or matplotlib.

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

from simkit.engine import Answer, Engine, UserConnection
from simkit.engines import DEFAULT_ENGINE, ENGINES, replay
from simkit.errors import InputError, RunDirError, ScenarioError, SimkitError
from simkit.events import Events, Policy
from simkit.population import Pod, Population, User
from simkit.results import Connections, Outcomes, Replay
from simkit.rules import Action, Reason, Status
from simkit.scenario import Scenario, load_scenario
from simkit.version import __version__

# Names of edge modules, loaded on first use (PEP 562): public name -> module.
_LAZY = {
    "Run": "simkit.io.runs",
    "compare": "simkit.comparison",
    "read_run": "simkit.io.runs",
    "replay_run": "simkit.pipeline",
    "simulate": "simkit.pipeline",
    "sweep": "simkit.sweeps",
}

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
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
    "Scenario",
    "ScenarioError",
    "SimkitError",
    "Status",
    "User",
    "UserConnection",
    "__version__",
    "compare",
    "load_scenario",
    "read_run",
    "replay",
    "replay_run",
    "simulate",
    "sweep",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
