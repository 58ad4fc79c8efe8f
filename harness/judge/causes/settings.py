"""Causes a scenario declares per side, confirmed by a control run with the setting aligned: the
cross-entropy guard (``clip``), the learning rate, and float32 rounding growth (the same pair in
float64).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from harness.judge.causes.evidence import CROSS_ENTROPIES
from harness.judge.controls import Control, Pair
from harness.spec.scenario import Scenario


def align(pair: Pair, what: str, get: Callable[[Scenario], object],
           put: Callable[[Scenario, object], Scenario]) -> list[Control]:
    """Controls that give both sides one side's value of a setting (b takes a's, then a takes b's)."""
    c, va, vb = pair.comparison, get(pair.a), get(pair.b)
    return [
        Control(f"{c.a} vs {c.b} ({c.dtype}) with {what} {va!r} on both sides", c.dtype, pair.a, put(pair.b, va)),
        Control(f"{c.a} vs {c.b} ({c.dtype}) with {what} {vb!r} on both sides", c.dtype, put(pair.a, vb), pair.b),
    ]


def with_training(scenario: Scenario, **changes: Any) -> Scenario:
    return replace(scenario, training=replace(scenario.training_spec, **changes))


def with_optimizer(scenario: Scenario, **changes: Any) -> Scenario:
    return with_training(scenario, optimizer=replace(scenario.training_spec.optimizer, **changes))


def clip_differs(pair: Pair) -> bool:
    a, b = pair.a.training, pair.b.training
    return a is not None and b is not None and a.loss in CROSS_ENTROPIES and a.clip != b.clip


def learning_rate_differs(pair: Pair) -> bool:
    a, b = pair.a.training, pair.b.training
    return a is not None and b is not None and a.optimizer.learning_rate != b.optimizer.learning_rate


def float64_control(pair: Pair) -> list[Control]:
    c = pair.comparison
    return [Control(f"{c.a} vs {c.b} in float64 (same scenario on each side)", "float64", pair.a, pair.b)]
