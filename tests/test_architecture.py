"""The shape of the package: a light core, and a public API that changes only on purpose."""

from __future__ import annotations

import subprocess
import sys

import pytest

import simkit

CORE = [
    "simkit",
    "simkit.rules",
    "simkit.population",
    "simkit.events",
    "simkit.results",
    "simkit.engine",
    "simkit.errors",
]
OPTIONAL_CORE = ["simkit.columnar", "simkit.scenario", "simkit.generate"]
HEAVY = ("pandas", "matplotlib", "networkx")


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", CORE + OPTIONAL_CORE)
def test_core_does_not_load_frames_graphs_or_charts(module: str) -> None:
    if module in OPTIONAL_CORE:
        pytest.importorskip(module)
    loaded = _modules_after_import(module)
    assert not [name for name in HEAVY if name in loaded]


def test_public_api_is_pinned() -> None:
    assert sorted(simkit.__all__) == [
        "Action",
        "Answer",
        "Connections",
        "DEFAULT_ENGINE",
        "ENGINES",
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
        "load_scenario",
        "read_run",
        "replay",
        "replay_run",
        "simulate",
    ]


def test_every_public_module_declares_all() -> None:
    import pkgutil

    for info in pkgutil.iter_modules(simkit.__path__):
        module = __import__(f"simkit.{info.name}", fromlist=["__all__"])
        assert hasattr(module, "__all__"), info.name
        assert module.__doc__, info.name
