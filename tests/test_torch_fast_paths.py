"""The torch runner's shortcuts around torch's profiler labels (``optimizer.step`` called through
the step it wraps, ``zero_grad`` as the ``grad.zero_()`` calls it makes) are taken only for torch's
own functions: a patched ``step`` or ``zero_grad`` (plain, or wrapped with ``functools.wraps`` so
that it looks like the original) and a registered step hook are still called, and the verdict
still fails. Real torch, in this process (``inline()``), a real catalogue scenario."""
from __future__ import annotations

import functools
from typing import Any, Iterator

import numpy as np
import pytest

from harness.pipeline import run_scenario
from harness.run.adapters import torch_eager
from harness.run.adapters.workers import inline
from harness.run.plan import make_plan
from harness.spec.catalogue import resolve
from tests.on_first_use import OnFirstUse, loaded, torch

optimizer_module = OnFirstUse("torch.optim.optimizer")  # torch.optim does not keep it as an attribute

# in the pytest process: on one pytest-xdist worker with the other tests that are (tests/conftest.py, _group)
pytestmark = pytest.mark.xdist_group(name="torch-in-process")

SCENARIO = "sgd-worked-example"  # plain SGD, batch size 1: every step's gradient differs


@pytest.fixture
def clean() -> Iterator[pytest.MonkeyPatch]:
    with inline(), pytest.MonkeyPatch.context() as mp:
        yield mp


def _optimizer() -> torch.optim.Optimizer:
    spec = resolve(SCENARIO).training_spec.optimizer
    parameters = [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    optimizer, _ = torch_eager.build_optimizer(loaded(torch), spec, parameters)
    return optimizer


def test_torch_own_step_and_zero_grad_take_the_short_path() -> None:
    """Unpatched, the shortcuts are taken (what makes the runner faster), and they give the run
    bitwise the arrays ``optimizer.step()`` and ``optimizer.zero_grad(set_to_none=False)`` give."""
    optimizer = _optimizer()
    assert isinstance(torch_eager._stepper(optimizer), functools.partial)
    assert torch_eager._zeroer(optimizer).__name__ == "zero"
    plan = make_plan(resolve(SCENARIO), "float64")
    fast = torch_eager.ADAPTER.run(plan)
    with pytest.MonkeyPatch.context() as mp:  # the shortcuts off: torch's own calls
        mp.setattr(torch_eager, "_stepper", lambda optimizer: optimizer.step)
        mp.setattr(torch_eager, "_zeroer", lambda optimizer: functools.partial(optimizer.zero_grad, set_to_none=False))
        slow = torch_eager.ADAPTER.run(plan)
    assert fast.losses.tobytes() == slow.losses.tobytes()
    for name in fast.params:
        assert fast.params[name].tobytes() == slow.params[name].tobytes()
        assert fast.grads[name].tobytes() == slow.grads[name].tobytes()


def _fails(step: int) -> None:
    """The scenario, numpy against torch with the patch in force, disagrees from ``step`` on."""
    result = run_scenario(resolve(SCENARIO), frameworks=("numpy", "torch"), dtypes=("float64",))
    assert result.runs[("torch", "float64")].ok
    assert not result.ok
    [comparison] = result.comparisons
    assert comparison.first_divergent_step == step


def test_a_step_patched_with_functools_wraps_is_called(clean: pytest.MonkeyPatch) -> None:
    original = torch.optim.SGD.step

    @functools.wraps(original)  # copies torch's ``hooked`` mark and ``__wrapped__``: it looks like torch's own
    def twice(self: torch.optim.SGD, closure: Any = None) -> Any:
        original(self)
        return original(self)
    clean.setattr(torch.optim.SGD, "step", twice)
    assert not isinstance(torch_eager._stepper(_optimizer()), functools.partial)
    _fails(0)


def test_a_zero_grad_patched_with_functools_wraps_is_called(clean: pytest.MonkeyPatch) -> None:
    original = torch.optim.Optimizer.zero_grad

    @functools.wraps(original)
    def keep(self: torch.optim.Optimizer, set_to_none: bool = True) -> None:
        return None  # the gradients accumulate over the steps
    clean.setattr(torch.optim.Optimizer, "zero_grad", keep)
    assert torch_eager._zeroer(_optimizer()).__name__ != "zero"
    _fails(1)  # step 0's gradients are the same: they accumulate from step 1 on


def test_a_registered_step_hook_is_called(clean: pytest.MonkeyPatch) -> None:
    def halve(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad.mul_(0.5)
    handle = optimizer_module.register_optimizer_step_pre_hook(halve)
    try:
        assert not isinstance(torch_eager._stepper(_optimizer()), functools.partial)
        _fails(0)
    finally:
        handle.remove()
    assert isinstance(torch_eager._stepper(_optimizer()), functools.partial)
    assert np.isfinite(torch_eager.ADAPTER.run(make_plan(resolve(SCENARIO), "float64")).losses).all()
