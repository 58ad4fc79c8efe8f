"""The reference's own formulas computed in another arithmetic, one NumPy operation at a time: an
``ndarray`` subclass (``Arithmetic``) whose every ufunc (matmul, exp, +, sum, sqrt, ...) passes its
arguments through ``argument`` and its results through ``result``, and returns the subclass again,
so the whole computation that starts from its arrays is made that way (``plan``: a run's data and
initial weights as such arrays). Three measurements use it, each running none of the code it checks:
the rounding term ``R`` (``harness.judge.rounding.Jittered``: every result moved one ulp), the
subnormal flush of TensorFlow and XLA (``harness.judge.causes.subnormals.Flushed``), and whether a
run's sums overflow (``Watched``, ``overflowing_sums``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from harness.run.adapters.numpy_reference import NumpyReference
from harness.run.plan import TrainingPlan


class Arithmetic(np.ndarray):
    """An array whose every ufunc's arguments and results go through ``argument`` and ``result`` (both
    the identity here), results with a dimension coming back as the same subclass."""

    @classmethod
    def argument(cls, value: Any) -> Any:
        """An operation's argument, plain, as this arithmetic reads it."""
        return value

    @classmethod
    def result(cls, value: Any, ufunc: np.ufunc, method: str) -> Any:  # noqa: ARG003 - a subclass's hook
        """An operation's result (an array, in place for ``out=``, or a scalar) as this arithmetic writes it."""
        return value

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        cls = type(self)
        plain = [cls.argument(x.view(np.ndarray) if isinstance(x, Arithmetic) else x) for x in inputs]
        out = kwargs.pop("out", None)
        if out is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Arithmetic) else o for o in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out is not None:
            for o in kwargs["out"]:
                if isinstance(o, np.ndarray):
                    o[...] = cls.result(o, ufunc, method)
            return out[0] if len(out) == 1 else out
        results = result if isinstance(result, tuple) else (result,)
        wrapped = tuple(cls.wrap(cls.result(r, ufunc, method)) for r in results)
        return wrapped if isinstance(result, tuple) else wrapped[0]

    @classmethod
    def wrap(cls, value: Any) -> Any:
        """A result with a dimension as this arithmetic's array (a scalar or a 0-d array stays plain: an
        operation with one of this class's arrays still goes through it)."""
        return value.view(cls) if isinstance(value, np.ndarray) and value.ndim else value

    @classmethod
    def of(cls, values: np.ndarray) -> Arithmetic:
        """``values`` as this arithmetic reads them, as its array."""
        return np.asarray(cls.argument(np.asarray(values))).view(cls)

    @classmethod
    def plan(cls, plan: TrainingPlan) -> TrainingPlan:
        """``plan`` with its data and initial weights as this arithmetic's arrays (copies of the weights:
        a run updates them in place)."""
        return replace(plan, X=cls.of(plan.X), y=cls.of(plan.y),
                       initial_params={k: cls.of(v.copy()) for k, v in plan.initial_params.items()})


class Watched(Arithmetic):
    """The reference's own arithmetic, watched: ``overflowed`` counts the sums of several terms (a
    matrix product, a reduction by addition) whose arguments are finite and whose result is not."""

    overflowed = [0]

    @classmethod
    def result(cls, value: Any, ufunc: np.ufunc, method: str) -> Any:
        summed = ufunc is np.matmul or (ufunc is np.add and method in ("reduce", "accumulate"))
        if summed and np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all():
            cls.overflowed[0] += 1
        return value

    @classmethod
    def argument(cls, value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
            raise _NotFinite
        return value


class _NotFinite(Exception):
    """A sum's argument is already inf or nan: the run left the finite numbers before any overflow."""


def overflowing_sums(plan: TrainingPlan) -> bool:
    """The reference's run of ``plan`` adds finite numbers into inf or nan (a matrix product or a sum
    that overflows) before any of its values is non-finite: where that happens, the result depends on
    the order of the additions (``inf - inf`` is nan, a partial sum overflows or not), which BLAS
    kernels and frameworks choose differently, so no implementation's value there is the maths'."""
    before = Watched.overflowed[0]
    try:
        with np.errstate(all="ignore"):
            NumpyReference().run(Watched.plan(plan))
    except _NotFinite:
        pass
    return Watched.overflowed[0] > before
