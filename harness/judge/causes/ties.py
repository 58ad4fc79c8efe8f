"""A cause of divergence that is a property of a framework's autograd, not a defect: a cross-entropy
guard differentiated at a tie, where the probability is exactly the guard's bound.

The ``"keras"`` guard clips ``p`` to ``[1e-7, 1 - 1e-7]``; the ``"torch"`` guard of a categorical
cross-entropy is ``max(log p, -100)``. Both are max and min. Where the argument is exactly the bound
the function has no derivative, and implementations choose one: TensorFlow's ``clip_by_value`` and
``_MaximumGrad`` and torch's ``clamp`` pass the whole gradient to the argument (``x >= bound``), as
the reference does (``reference.losses``); JAX gives each of max's (and min's) two arguments half
of it (``lax.max``'s JVP: ``_balanced_eq``, 1/2 where they are equal), so ``jnp.clip`` (maximum,
then minimum, which ``keras.ops.clip`` is on JAX, in Keras' own cross-entropies too) passes half
(measured on the pinned jax 0.10.2: ``jax.grad(lambda p: jnp.clip(p, 1e-7, 1 - 1e-7))`` is 0.5 at
either bound). A float32 sigmoid lands exactly on ``1 - 1e-7`` (0.99999988) for a range of inputs
around 16.118, so the gradient through the clipped probability is halved for that row.

The measurement runs none of the framework's code: the reference's own run of the side's scenario is
made again with the guards' derivative at a tie taken as JAX takes it (``split``, the reference's
losses with half the gradient where the argument equals the bound, written here in NumPy), and the
side's run must agree with it at every recorded step, while the reference's own run does not (so
the tie is what parts them). A side whose adapter declares no such rule (``Adapter.ties`` None:
TensorFlow, torch, NumPy) is never accounted for by it.
"""
from __future__ import annotations

from typing import cast

import numpy as np

from harness.judge.causes.evidence import declares, made_if_acting
from harness.judge.controls import Pair
from harness.judge.runs import Runs
from harness.run.adapters.numpy_reference import NumpyReference
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory
from reference.losses import KERAS_EPSILON, LOSSES, TORCH_LOG_FLOOR, Loss
from reference.types import Array

NAME = "guard's derivative split at its bound"
EXPLANATION = ("the framework's autograd gives half the gradient to a cross-entropy guard's argument where it is "
               "exactly the bound (JAX's max and min at a tie; keras.ops.clip is jnp.clip), where the reference, "
               "TensorFlow and torch pass all of it")

TIES = [0]  # how many elements sat exactly on a guard's bound, ever (a gate: did a tie act?)


def _split(at: np.ndarray) -> Array:
    """1 where the argument is off the bound, 1/2 where it is exactly on it (JAX's share of the gradient)."""
    TIES[0] += int(np.count_nonzero(at))
    return np.where(at, 0.5, 1.0)


def _keras_bounds(p: Array) -> np.ndarray:
    """Where ``p`` is exactly on a bound of the "keras" guard's clip."""
    eps = p.dtype.type(KERAS_EPSILON)
    return cast(np.ndarray, (p == eps) | (p == 1 - eps))


def _binary_gradient(y_true: Array, y_pred: Array, *, clip: str = "none") -> Array:
    """The reference's gradient (the whole gradient at a bound), halved where ``p`` is on the "keras"
    guard's bound (the "torch" guard's backward is BCELoss's own, no max)."""
    grad = LOSSES["binary_crossentropy"].gradient(y_true, y_pred, clip=clip)
    return grad * _split(_keras_bounds(y_pred)).astype(grad.dtype) if clip == "keras" else grad


def _categorical_gradient(y_true: Array, y_pred: Array, *, clip: str = "none") -> Array:
    """The reference's gradient with the guard's derivative halved on its bound: ``log p`` exactly -100
    under "torch"; under "keras", ``q = p / sum(p)`` exactly on a bound of the clip, before the chain rule
    through the renormalisation (``reference.losses.categorical_crossentropy_grad``)."""
    dtype = y_pred.dtype
    rows = dtype.type(y_pred.size // y_pred.shape[-1])
    if clip == "torch":
        with np.errstate(divide="ignore"):
            on = np.log(y_pred) == dtype.type(TORCH_LOG_FLOOR)
        grad = LOSSES["categorical_crossentropy"].gradient(y_true, y_pred, clip=clip)
        return grad * _split(on).astype(dtype)
    if clip != "keras":
        return LOSSES["categorical_crossentropy"].gradient(y_true, y_pred, clip=clip)
    eps = dtype.type(KERAS_EPSILON)
    total = np.sum(y_pred, axis=-1, keepdims=True)
    q = y_pred / total
    share = ((q >= eps) & (q <= 1 - eps)).astype(dtype) * _split(_keras_bounds(q)).astype(dtype)
    grad_q = -y_true * (share / np.clip(q, eps, 1 - eps)) / rows  # the reference's order of operations
    return cast(Array, (grad_q - np.sum(grad_q * q, axis=-1, keepdims=True)) / total)


class Split(NumpyReference):
    """The reference, its guards differentiated at a tie as JAX does (module docstring)."""

    losses = {**LOSSES,
              "binary_crossentropy": Loss("binary_crossentropy", LOSSES["binary_crossentropy"].value,
                                          _binary_gradient),
              "categorical_crossentropy": Loss("categorical_crossentropy",
                                               LOSSES["categorical_crossentropy"].value, _categorical_gradient)}


def applies(pair: Pair) -> bool:
    """A side's framework splits the derivative at a tie, and both sides train a guarded cross-entropy."""
    return (any(declares(pair.runs, label, "ties") for label in (pair.comparison.a, pair.comparison.b))
            and all(s.training is not None and s.training.loss != "mse" and s.training.clip != "none"
                    for s in (pair.a, pair.b)))


def reproduce(runs: Runs, label: str, plan: TrainingPlan, step: int) -> Trajectory | None:
    """The reference's run of ``plan`` with the guards' derivative split at a tie, when ``label``'s framework
    splits it and a probability sits on a bound by ``step``, where the pair parts (else the run's steps up to
    there are the reference's own, bit for bit, and cannot account for the difference)."""
    training = plan.scenario.training
    if not declares(runs, label, "ties") or training is None or training.loss == "mse" or training.clip == "none":
        return None
    with np.errstate(all="ignore"):
        return made_if_acting(TIES, Split().run, plan, step)
