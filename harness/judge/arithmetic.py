"""The reference's own formulas computed in another arithmetic, one NumPy operation at a time: an
``ndarray`` subclass (``Arithmetic``) whose every ufunc (matmul, exp, +, sum, sqrt, ...) passes its
arguments through ``argument`` and its results through ``result``, and returns the subclass again,
so the whole computation that starts from its arrays is made that way (``plan``: a run's data and
initial weights as such arrays). Two measurements use it, each running none of the code it checks:
the rounding term ``R`` (``harness.judge.rounding.Jittered``: every result moved one ulp) and the
subnormal flush of TensorFlow and XLA (``harness.judge.causes.subnormals.Flushed``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

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
