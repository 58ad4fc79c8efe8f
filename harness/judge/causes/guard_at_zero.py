"""A cause of divergence that is a property of the frameworks, not a defect: the ``"torch"``
cross-entropy guard differentiated by autograd where a probability is exactly 0.

Under ``clip = "torch"`` each log term of a categorical cross-entropy is ``max(log p, -100)``.
The frameworks' adapters write it as torch's ``BCELoss`` computes its forward pass, the log first,
then the clamp (``torch.clamp(torch.log(p), min=-100)``; ``keras.ops.maximum(keras.ops.log(p),
-100)``), and their autograd differentiates that composition by the chain rule, one operation at a
time:

* the clamp passes the incoming gradient ``g`` where ``log p >= -100`` and 0 where it binds
  (torch's ``clamp_backward``: ``where(self >= min, grad, 0)``; TensorFlow's ``_MaximumGrad``:
  ``where(x >= y, grad, 0)``);
* the log multiplies that by its local derivative ``1/p`` (torch's ``derivatives.yaml``:
  ``grad.div(self)``, and JAX's ``g / x``; TensorFlow's ``_LogGrad``: ``grad * reciprocal(x)``).

Where the clamp binds at ``p > 0`` this gives ``0 / p = 0``, the zero gradient the reference
gives (``reference.losses``). At ``p == 0`` exactly (a softmax probability that underflowed: a
logit about 745 below its row's largest in float64, 104 in float32) it is ``0 / 0`` or
``0 x inf``: nan, whatever the target; the softmax's backward spreads it over its row, and the
row over every parameter. (TensorFlow's product form is nan too for a subnormal ``p`` whose
reciprocal overflows, below ``1 / max``: 5.6e-309 in float64, 2.9e-39 in float32, where the
quotient form gives 0.) The function itself is constant, -100, on ``[0, e^-100]``: its derivative
at ``p = 0`` is 0, the reference's. So the reference is right, and the frameworks' nan is how their
autograd evaluates the chain rule at a point where one factor is infinite: a property of the
frameworks (torch's own ``BCELoss`` avoids it with a backward of its own,
``(p - y) / max(p (1 - p), 1e-12)``), named here, not a defect.

The nan then meets each ReLU layer's backward, which the frameworks write in two forms that
differ only on a nan gradient: TensorFlow's ``ReluGrad`` multiplies by the 0/1 mask (``gradients *
(features > 0)``, as the reference's ``relu_grad`` does: nan x 0 = nan, so every unit's gradient is
nan), torch's ``threshold_backward`` selects (``where(result <= 0, 0, grad)``, and JAX's ``relu``
jvp ``select(x > 0, g, 0)``: a unit the ReLU switched off gets exactly 0, nan or not). So a torch
run keeps finite the incoming weights of the units its ReLUs switched off at the step, where
TensorFlow's are nan (``RELU_FORMS``: each framework's own form, the only one tried for it).

The measurement that confirms it runs none of the frameworks' code: a side's gradients at the
step are reproduced from its own layer outputs and parameters by the reference's backpropagation
(``reference.layers.Dense.backward``, each ReLU's backward in the side's framework's form) with the
loss gradient computed by autograd's rule (``autograd_gradient``, in the form of the side's
framework or the other), nan at exactly the same elements and the finite ones within the agreement
rule, where the reference's own guard gives
no nan, and the other side's are the reference guard's (so the pair differs by the rule alone);
the side's loss at the step is the declared guard's of its own output (finite: a side that
did not guard its log is another cause, ``findings.clip_applied``); and the side's run leaves the
finite numbers at that step (everything after it is that nan).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from harness.judge.causes.evidence import Evidence, Finding
from harness.judge.controls import Pair
from harness.run.labels import framework_of
from harness.spec.tolerance import compare_elements
from reference.layers import Dense, DenseCache
from reference.losses import TORCH_LOG_FLOOR, get_loss
from reference.network import bias_name, kernel_name
from reference.types import Array

NAME = "autograd at a clamped log(0)"
EXPLANATION = ("the \"torch\" guard max(log p, -100) differentiated by autograd where a probability is exactly 0: "
               "the clamp's zero gradient times log's derivative 1/p is 0/0 or 0 x inf = nan, where the "
               "function's derivative (the reference's) is 0")
LossGradient = Callable[[Array, Array], Array]


def _quotient(g: Array, p: Array) -> Array:
    """torch's and JAX's form: ``(g where the clamp passes it, else 0) / p``."""
    return _passed(g, p) / p


def _product(g: Array, p: Array) -> Array:
    """TensorFlow's form: ``(g where the clamp passes it, else 0) x (1 / p)``."""
    return _passed(g, p) * (p.dtype.type(1) / p)


def _passed(g: Array, p: Array) -> Array:
    with np.errstate(divide="ignore"):
        return np.where(np.log(p) >= p.dtype.type(TORCH_LOG_FLOOR), g, p.dtype.type(0))


QUOTIENT, PRODUCT = "divided by p (torch's and JAX's log backward)", "times 1/p (TensorFlow's log backward)"
FORMS: dict[str, Callable[[Array, Array], Array]] = {QUOTIENT: _quotient, PRODUCT: _product}


def forms_of(label: str) -> list[str]:
    """The forms to try for a side, its framework's first (Keras on TensorFlow: the product)."""
    return [PRODUCT, QUOTIENT] if framework_of(label) == "keras" else [QUOTIENT, PRODUCT]


TIMES_MASK = "times the 0/1 mask (TensorFlow's ReluGrad: nan x 0 = nan)"
SELECT = "selected (torch's threshold_backward, JAX's select: 0 where the unit is off, nan or not)"
# each framework's ReLU backward, as its source writes it (the reference's relu_grad multiplies)
RELU_FORMS: dict[str, str] = {"numpy": TIMES_MASK, "keras": TIMES_MASK, "torch": SELECT, "keras@torch": SELECT,
                              "keras@jax": SELECT}


def relu_form_of(label: str) -> str:
    """The ReLU backward of ``label``'s framework (``RELU_FORMS``); a framework not listed has none
    declared, and the reference's (the mask's) is tried."""
    return RELU_FORMS.get(framework_of(label), TIMES_MASK)


def relu_backward(z: Array, grad_a: Array, form: str) -> Array:
    """dL/dz of a ReLU layer from dL/da, in ``form``: the product with the mask ``z > 0``, or the
    selection ``where(z > 0, grad_a, 0)`` (torch's ``where(relu(z) <= 0, 0, grad)``: the same at a finite z)."""
    if form == SELECT:
        return np.where(z > 0, grad_a, grad_a.dtype.type(0))
    return grad_a * (z > 0).astype(grad_a.dtype)


def autograd_gradient(y: Array, p: Array, form: Callable[[Array, Array], Array]) -> Array:
    """dL/dp of ``L = -mean over rows of sum_k y_k max(log p_k, -100)`` as autograd computes it: the
    mean's and the product's gradient ``g = -y / rows``, then the clamp and the log (``form``)."""
    rows = p.dtype.type(p.size // p.shape[-1])
    with np.errstate(all="ignore"):
        return form(-y / rows, p)


def backpropagate(e: Evidence, side: str, loss_gradient: Array) -> dict[str, Array]:
    """The step's gradients from ``side``'s own trace (its parameters and layer outputs) by the
    reference's backpropagation, starting from ``loss_gradient`` at the output, each ReLU's backward
    in the form of ``side``'s framework (``relu_form_of``)."""
    trace, layers = e.traces[side], e.scenarios[side].layers
    x = e.plan.X[e.plan.batch_indices(e.step)]
    inputs = [x] + [trace[f"output layers.{i}"] for i in range(len(layers) - 1)]
    grads: dict[str, Array] = {}
    grad_a: Array | None = loss_gradient
    with np.errstate(all="ignore"):
        for i in reversed(range(len(layers))):
            spec = layers[i]
            kernel = trace[f"params {kernel_name(i)}"]
            z = inputs[i] @ kernel + (trace[f"params {bias_name(i)}"] if spec.use_bias else 0)
            assert grad_a is not None
            activation = spec.activation
            if activation == "relu":  # its backward in the side's framework's form, then the layer's linear part
                grad_a, activation = relu_backward(z, grad_a, relu_form_of(side)), "linear"
            dense = Dense(units=spec.units, activation=activation, use_bias=spec.use_bias, axis=spec.axis)
            grad_a, grads[kernel_name(i)], bias = dense.backward(
                grad_a, kernel, DenseCache(x=inputs[i], z=z, a=trace[f"output layers.{i}"]), input_gradient=i > 0)
            if bias is not None:
                grads[bias_name(i)] = bias
    return grads


def _reproduces(grads: dict[str, Array], trace: dict[str, np.ndarray], e: Evidence) -> bool:
    """Every gradient nan at exactly the same elements as the side's, the others within the agreement rule."""
    for name, g in grads.items():
        recorded = np.asarray(trace[f"gradient {name}"], dtype=np.float64)
        g = np.asarray(g, dtype=np.float64)
        if g.shape != recorded.shape or not np.array_equal(np.isnan(g), np.isnan(recorded)):
            return False
        ok = ~np.isnan(g)
        if ok.any() and bool(compare_elements(g[ok], recorded[ok], e.tolerance).bad.any()):
            return False
    return True


def _has_nan(grads: dict[str, Array]) -> bool:
    return any(bool(np.isnan(g).any()) for g in grads.values())


def applies(pair: Pair) -> bool:
    """Both sides train a categorical cross-entropy under the "torch" guard."""
    return all(s.training is not None and s.training.loss == "categorical_crossentropy" and s.training.clip == "torch"
               for s in (pair.a, pair.b))


def check(e: Evidence) -> Finding | None:
    """A side whose nan gradients at the step are autograd's rule at a probability exactly 0
    (module docstring), where the reference's guard gives none."""
    specs = [e.scenarios[label].training for label in (e.a, e.b)]
    if any(s is None or s.loss != "categorical_crossentropy" or s.clip != "torch" for s in specs):
        return None
    last = f"output layers.{len(e.scenarios[e.a].layers) - 1}"
    y = e.plan.y[e.plan.batch_indices(e.step)]
    for side, other in e.sides:
        trace = e.traces.get(side)
        if trace is None or last not in trace or not all(f"gradient {p}" in trace
                                                         for p in e.scenarios[side].param_names()):
            continue
        if e.runs[side].first_nonfinite_step != e.step:  # its run leaves the finite numbers there, not before
            continue
        p = np.asarray(trace[last])
        with np.errstate(all="ignore"):
            value = get_loss("categorical_crossentropy").value(y, p, clip="torch")
        loss = np.asarray(trace.get("loss", np.nan), dtype=np.float64)
        if not (np.isfinite(value) and np.isfinite(loss).all()
                and not compare_elements(np.atleast_1d(value), np.atleast_1d(loss), e.tolerance).bad.any()):
            continue  # its forward pass is not the declared guard's (e.g. an unguarded log(0)): another cause
        with np.errstate(all="ignore"):
            guarded = backpropagate(e, side, get_loss("categorical_crossentropy").gradient(y, p, clip="torch"))
        if _has_nan(guarded):
            continue  # the reference's guard gives nan too: not this rule's doing
        for form_name in forms_of(side):
            grads = backpropagate(e, side, autograd_gradient(y, p, FORMS[form_name]))
            if not _has_nan(grads) or not _reproduces(grads, trace, e):
                continue
            # the pair's difference is the rule's alone: the other side's gradients are the guard's
            theirs = e.traces.get(other)
            if theirs is None or last not in theirs or not all(f"gradient {q}" in theirs
                                                                for q in e.scenarios[other].param_names()):
                continue
            with np.errstate(all="ignore"):
                if not _reproduces(backpropagate(e, other, get_loss("categorical_crossentropy").gradient(
                        y, theirs[last], clip="torch")), theirs, e):
                    continue
            zeros = np.argwhere(p == 0)
            where = ", ".join(f"[{r}, {k}]" for r, k in zeros[:4]) + (", ..." if len(zeros) > 4 else "")
            at = f"probabilities exactly 0 at {where}" if len(zeros) else "probabilities whose reciprocal overflows"
            relu = (f", each ReLU's backward {relu_form_of(side)}"
                    if any(spec.activation == "relu" for spec in e.scenarios[side].layers) else "")
            return Finding(NAME, side,
                           f"{side}'s gradients at step {e.step} are nan exactly where autograd's rule for the "
                           f"\"torch\" guard max(log p, -100) puts them: the clamp's gradient 0 {form_name} "
                           f"({at} in its output: 0/0 or 0 x inf = nan), reproduced by the reference's backpropagation "
                           f"of its own layer outputs{relu}; the guard's derivative there is 0; {other}'s are the "
                           "reference guard's (0 where the clamp binds)")
    return None
