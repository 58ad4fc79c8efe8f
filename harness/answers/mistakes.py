"""Students' mistakes the audit can name, each confirmed by a measurement, never asserted.

A mistake is confirmed when what the submission computed agrees, within the agreement rule,
with the reference computation **with that one change applied**, computed here from the
reference network (``reference.network``, ``reference.activations``, ``reference.losses``) and
the scenario's plan — never by running the submission's code again. A replay that agrees at
every compared step (or evaluation point) is the evidence; a mistake none of them reproduces is
left unnamed ("no known cause confirmed").

* ``UPDATE_MISTAKES`` (``--kind step`` and ``train``, plain SGD): the update ``-rate x g'`` where
  ``g`` is the reference gradient at the side's current parameters on the step's batch and
  ``g'`` a changed gradient (0.5 x g, N x g, the first step's g reused, the running sum, a bias
  gradient averaged over its layer's units or divided by N) or ``rate`` a changed rate (lr²,
  2 lr, -lr, 1);
* ``loss_mistakes`` (``--kind loss``): another standard loss, the batch's sum instead of its
  mean, half the loss, the root of the MSE;
* ``forward_mistakes`` (``--kind forward``): a layer with another activation, without its bias,
  or with its (square) kernel transposed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from harness.run.adapters.numpy_reference import build_network
from harness.spec.scenario import Scenario
from reference.activations import ACTIVATIONS
from reference.losses import LOSSES, Loss, get_loss
from reference.network import bias_name, kernel_name

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Step:
    """What an update may use at one step: the reference gradient at the side's current parameters
    on the step's batch (``grads``), that batch's rows, the gradient of step 0 and the running sum."""
    lr: float
    grads: Params
    rows: int
    first: Params
    total: Params


@dataclass(frozen=True)
class UpdateMistake:
    name: str  # in plain language, addressed to the student
    grads: Callable[[Step], Params]  # the gradient the update uses
    rate: Callable[[float], float] = lambda lr: lr  # the update is -rate(lr) x that gradient
    applies: Callable[[Scenario], bool] = lambda _scenario: True
    loops_only: bool = False  # needs several steps of one loop (--kind train only)
    # without recorded gradients another mistake gives the same updates: said beside the name
    same_updates_as: str = ""


def _scaled(grads: Params, factor: float) -> Params:
    return {k: factor * v for k, v in grads.items()}


def _bias(grads: Params, change: Callable[[np.ndarray], np.ndarray]) -> Params:
    return {k: change(v) if k.endswith(".bias") else v for k, v in grads.items()}


def _has_bias(scenario: Scenario) -> bool:
    return any(layer.use_bias for layer in scenario.layers)


def _has_wide_bias(scenario: Scenario) -> bool:
    return any(layer.use_bias and layer.units > 1 for layer in scenario.layers)


def _mse(scenario: Scenario) -> bool:
    return scenario.training is not None and scenario.training.loss == "mse"


UPDATE_MISTAKES: tuple[UpdateMistake, ...] = (
    UpdateMistake("your update applies the learning rate twice (the step is lr² x the gradient)",
                  grads=lambda s: s.grads, rate=lambda lr: lr * lr),
    UpdateMistake("your update is applied twice (the step is 2 x lr x the gradient)",
                  grads=lambda s: s.grads, rate=lambda lr: 2 * lr),
    UpdateMistake("your update adds the gradient instead of subtracting it",
                  grads=lambda s: s.grads, rate=lambda lr: -lr),
    UpdateMistake("your update does not apply the learning rate (the step is the whole gradient)",
                  grads=lambda s: s.grads, rate=lambda _lr: 1.0),
    UpdateMistake("the MSE gradient's factor 2 is dropped (your gradients are 0.5 x the gradient of the mean "
                  "squared error)", grads=lambda s: _scaled(s.grads, 0.5), applies=_mse,
                  same_updates_as="or the learning rate is halved"),
    UpdateMistake("the gradient is summed over the batch's rows instead of averaged (N x the batch-mean gradient)",
                  grads=lambda s: _scaled(s.grads, float(s.rows))),
    UpdateMistake("your bias gradient is averaged over the layer's units instead of summed over the batch's rows "
                  "(every unit gets the same value)",
                  grads=lambda s: _bias(s.grads, lambda g: np.full_like(g, g.mean())), applies=_has_wide_bias),
    UpdateMistake("your bias gradient is the mean, not the sum (1/N of the correct one)",
                  grads=lambda s: _bias(s.grads, lambda g: g / s.rows), applies=_has_bias),
    UpdateMistake("your loop reuses the first batch's gradient at every step",
                  grads=lambda s: s.first, loops_only=True),
    UpdateMistake("your loop adds each step's gradient to the previous ones (the gradient is never reset)",
                  grads=lambda s: s.total, loops_only=True),
)


def plain_sgd(scenario: Scenario) -> bool:
    """The update is ``-lr x gradient``: SGD without momentum (what a ``step`` function computes)."""
    spec = None if scenario.training is None else scenario.training.optimizer
    return spec is not None and spec.name == "sgd" and not spec.options.get("momentum") \
        and not spec.options.get("nesterov")


def update_mistakes(scenario: Scenario, *, loop: bool) -> list[UpdateMistake]:
    """The update mistakes that can be told apart on ``scenario`` (``loop``: a whole training loop)."""
    if not plain_sgd(scenario):
        return []
    return [m for m in UPDATE_MISTAKES if m.applies(scenario) and (loop or not m.loops_only)]


def gradients(scenario: Scenario, params: Params, X: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """The reference's batch-mean loss and gradient (``reference.network``), overflow allowed."""
    training = scenario.training_spec
    with np.errstate(all="ignore"):
        loss, grads = build_network(scenario).loss_and_gradients(X, y, params, loss=training.loss, clip=training.clip)
    return float(loss), grads


def apply(mistake: UpdateMistake | None, step: Step, params: Params) -> tuple[Params, Params]:
    """(the gradient the update uses, the parameters after it) with ``mistake`` (None: the correct update)."""
    used = step.grads if mistake is None else mistake.grads(step)
    rate = step.lr if mistake is None else mistake.rate(step.lr)
    with np.errstate(all="ignore"):
        return used, {k: params[k] - rate * used[k] for k in params}


# --- the loss ----------------------------------------------------------------------


@dataclass(frozen=True)
class LossMistake:
    name: str
    value: Callable[[np.ndarray, np.ndarray], float]  # (y, y_pred) -> the loss with the mistake


def loss_mistakes(scenario: Scenario) -> list[LossMistake]:
    training = scenario.training_spec
    declared = get_loss(training.loss)

    def mean(y: np.ndarray, p: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            return float(declared.value(y, p, clip=training.clip))

    def another(loss: Loss) -> Callable[[np.ndarray, np.ndarray], float]:
        def value(y: np.ndarray, p: np.ndarray) -> float:
            with np.errstate(all="ignore"):
                return float(loss.value(y, p, clip=training.clip))
        return value

    out = [LossMistake(f"your loss is {other}, not the scenario's {training.loss}", another(LOSSES[other]))
           for other in LOSSES if other != training.loss]
    out += [LossMistake("your loss is summed over the batch's rows instead of averaged (N x the mean)",
                        lambda y, p: y.shape[0] * mean(y, p)),
            LossMistake(f"your loss is half the scenario's {training.loss} (0.5 x)", lambda y, p: 0.5 * mean(y, p))]
    if training.loss == "mse":
        out.append(LossMistake("your loss is the root of the mean squared error (RMSE), not the MSE",
                               lambda y, p: float(np.sqrt(mean(y, p)))))
    return out


# --- the forward pass ----------------------------------------------------------------


@dataclass(frozen=True)
class ForwardMistake:
    name: str
    output: Callable[[Params, np.ndarray], np.ndarray]  # (params, X) -> the network's output with the mistake


def _changed_output(scenario: Scenario, params: Params, X: np.ndarray, *, activation: dict[int, str] | None = None,
                    no_bias: int | None = None, transposed: int | None = None) -> np.ndarray:
    """The network's output computed here, layer by layer, with at most one change: layer ``i``'s
    activation, its bias left out, or its kernel transposed."""
    a = X
    with np.errstate(all="ignore"):
        for i, layer in enumerate(scenario.layers):
            kernel = params[kernel_name(i)].T if transposed == i else params[kernel_name(i)]
            z = a @ kernel
            if layer.use_bias and no_bias != i:
                z = z + params[bias_name(i)]
            name = (activation or {}).get(i, layer.activation)
            fn = ACTIVATIONS[name]
            a = fn.forward(z, axis=layer.axis) if fn.takes_axis else fn.forward(z)
    return a


def forward_mistakes(scenario: Scenario) -> list[ForwardMistake]:
    def changed(**change: Any) -> Callable[[Params, np.ndarray], np.ndarray]:
        return lambda params, X: _changed_output(scenario, params, X, **change)

    out = []
    for i, layer in enumerate(scenario.layers):
        which = "output layer" if i == len(scenario.layers) - 1 else f"layer {i + 1}"
        for name in ACTIVATIONS:
            if name != layer.activation:
                out.append(ForwardMistake(f"your {which} applies {name}, not the scenario's {layer.activation}",
                                          changed(activation={i: name})))
        if layer.use_bias:
            out.append(ForwardMistake(f"your {which} leaves out its bias", changed(no_bias=i)))
        shape = scenario.param_shapes()[kernel_name(i)]
        if shape[0] == shape[1]:
            out.append(ForwardMistake(f"your {which} uses its kernel transposed", changed(transposed=i)))
    return out

