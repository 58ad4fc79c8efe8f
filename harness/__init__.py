"""nn-parity: a NumPy reference, Keras and PyTorch run side by side and compared step by step.

The documented Python API (docs/python-api.md), importable from here:

- load: ``resolve``, ``resolve_all``, ``load_scenarios``, ``Scenario``, ``DTYPES``, ``BadInput``;
- run and judge: ``run_scenario``, ``planned_pairs``, ``implementations``, ``FRAMEWORKS``,
  ``ScenarioResult``, ``Comparison``, ``Tolerance``;
- explain: ``diagnose``, ``Diagnosis``;
- assert and tabulate: ``assert_parity``, ``assert_gradients_match``, ``comparisons_frame``,
  ``audit_frame``.

Each name is imported from its module on first use, so ``import harness`` (and every command that
needs none of them, ``nn-parity list``) loads no framework and none of the floors it does not use.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.errors import BadInput as BadInput
    from harness.judge.compare import Comparison as Comparison
    from harness.judge.diagnosis import Diagnosis as Diagnosis
    from harness.judge.result import ScenarioResult as ScenarioResult
    from harness.pipeline import diagnose as diagnose
    from harness.pipeline import run_scenario as run_scenario
    from harness.render.frames import comparisons_frame as comparisons_frame
    from harness.run.adapters import FRAMEWORKS as FRAMEWORKS
    from harness.run.runner import implementations as implementations
    from harness.run.runner import planned_pairs as planned_pairs
    from harness.spec.catalogue import resolve as resolve
    from harness.spec.catalogue import resolve_all as resolve_all
    from harness.spec.scenario import DTYPES as DTYPES
    from harness.spec.scenario import Scenario as Scenario
    from harness.spec.scenario import load_scenarios as load_scenarios
    from harness.spec.tolerance import Tolerance as Tolerance
    from harness.testing import assert_gradients_match as assert_gradients_match
    from harness.testing import assert_parity as assert_parity
    from harness.testing import audit_frame as audit_frame

_HOMES = {
    "BadInput": "harness.errors",
    "Comparison": "harness.judge.compare",
    "Diagnosis": "harness.judge.diagnosis",
    "ScenarioResult": "harness.judge.result",
    "diagnose": "harness.pipeline",
    "run_scenario": "harness.pipeline",
    "FRAMEWORKS": "harness.run.adapters",
    "implementations": "harness.run.runner",
    "planned_pairs": "harness.run.runner",
    "resolve": "harness.spec.catalogue",
    "resolve_all": "harness.spec.catalogue",
    "DTYPES": "harness.spec.scenario",
    "Scenario": "harness.spec.scenario",
    "load_scenarios": "harness.spec.scenario",
    "Tolerance": "harness.spec.tolerance",
    "assert_gradients_match": "harness.testing",
    "assert_parity": "harness.testing",
    "audit_frame": "harness.testing",
    "comparisons_frame": "harness.render.frames",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """``harness.<name>``: the documented name, imported from its module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
