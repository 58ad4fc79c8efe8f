"""The labels of a scenario's runs: ``numpy``, ``keras``, ``numpy[keras]`` (the reference in an optimizer
convention), ``keras@jax[64-bit]`` (a control run with its framework's narrowing rule off), and which
pairs of them are compared (``pairs_of``).

Every floor names runs by these labels; this module is the one place that builds and reads them.
"""
from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Mapping

from harness.run.adapters.numpy_reference import ADAPTER as NUMPY
from harness.spec.conventions import COMMON
from harness.spec.scenario import Scenario

REFERENCE = NUMPY.name  # the implementation every other one is checked against

CONTROL = "64-bit"  # the control run's tag: the implementation with its narrowing rule turned off


def control_label(label: str) -> str:
    """``keras@jax`` -> ``keras@jax[64-bit]``: its control run with its narrowing rule off."""
    return f"{label}[{CONTROL}]"


def framework_of(label: str) -> str:
    """``numpy[keras]`` -> ``numpy``."""
    return label.split("[", 1)[0]


def reference_in(convention: str) -> str:
    """The label of the reference run in ``convention``: ``numpy[keras]``."""
    return f"{REFERENCE}[{convention}]"


def convention_of(label: str) -> str | None:
    """``numpy[keras]`` -> ``keras``; None for a label without a pinned convention."""
    return label[len(REFERENCE) + 1:-1] if label.startswith(f"{REFERENCE}[") else None


def with_convention(scenario: Scenario, convention: str) -> Scenario:
    """The scenario with its optimizer pinned to ``convention`` (the ``convention`` option)."""
    training = scenario.training_spec
    pinned_optimizer = replace(training.optimizer, options={**training.optimizer.options, "convention": convention})
    return replace(scenario, training=replace(training, optimizer=pinned_optimizer))


def pairs_of(labels: list[str], conventions: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every pair, except a reference run in one convention against a framework of another
    (that difference is the two reference runs' plus the framework's own)."""
    out = []
    for a, b in itertools.combinations(labels, 2):
        ref = a if convention_of(a) else b if convention_of(b) else None
        other = b if ref == a else a
        if ref is not None and not convention_of(other) and conventions.get(other) not in (
                None, "", COMMON, convention_of(ref)):
            continue
        out.append((a, b))
    return out
