"""Tolerance propagated from rounded inputs, by torch autograd.

When a key's inputs are themselves rounded (a table printed at 2 decimals), each input
element ``x_j`` is only known to ``±h_j = 0.5 * 10**-d``. The answer ``f`` then moves by
at most (first order, worst case)::

    propagated_i = sum_j |d f_i / d x_j| * h_j

The Jacobian is ``torch.func.jacrev`` of the answer written as a torch function of its
inputs (the torch adapter's model through ``torch.func.functional_call``). Gradients are
differentiated once more (``torch.func.grad`` inside ``jacrev``); training runs are
unrolled (SGD). Predictions and accuracies are piecewise constant: no propagated part.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from harness.answers.compute import identity_layer, in_memory_scenario, run_scenario_of
from harness.answers.questions import (
    Activation, Dense, Gradient, Loss, Network, Question, ScenarioQuestion, Train, param_labels,
)
from harness.spec.scenario import LayerSpec


def input_names(question: Question) -> list[str]:
    """The inputs an ``inputs_rounded_to`` table may name."""
    if isinstance(question, Dense):
        return ["X", "w"] + (["b"] if question.b is not None else [])
    if isinstance(question, Activation):
        return ["z"]
    if isinstance(question, Loss):
        return ["y_true", "y_pred"]
    if isinstance(question, ScenarioQuestion):
        return []
    labels = list(param_labels(len(question.layers), [l.use_bias for l in question.layers]))
    return ["X", *labels] + (["y"] if isinstance(question, (Gradient, Train)) else [])


def input_values(question: Question) -> dict[str, np.ndarray]:
    if isinstance(question, Dense):
        values = {"X": question.X, "w": question.w}
        return values | ({"b": question.b} if question.b is not None else {})
    if isinstance(question, Activation):
        return {"z": question.z}
    if isinstance(question, Loss):
        return {"y_true": question.y_true, "y_pred": question.y_pred}
    values = {"X": question.X}
    labels = param_labels(len(question.layers), [l.use_bias for l in question.layers])
    for label, name in labels.items():
        i = int(name.split(".")[1])
        values[label] = question.layers[i].kernel if name.endswith("kernel") else question.layers[i].bias
    if isinstance(question, (Gradient, Train)):
        values["y"] = question.y
    return values


def propagated(question: Question, rounded: int | dict[str, int]) -> dict[str, np.ndarray]:
    """part -> the propagated half-width, element by element."""
    import torch

    names = input_names(question)
    if not names:
        raise ValueError("a scenario answer's inputs are the scenario's own, not rounded key inputs")
    decimals = {n: rounded for n in names} if isinstance(rounded, int) else dict(rounded)
    values = input_values(question)
    inputs = {n: torch.tensor(np.asarray(values[n], dtype=np.float64)) for n in names}
    fn = _torch_answer(torch, question)
    jac = torch.func.jacrev(fn)(inputs)
    if not isinstance(jac, dict) or not all(isinstance(v, dict) for v in jac.values()):
        jac = {"value": jac}
    out = {}
    for part, by_input in jac.items():
        total = None
        for name, d in decimals.items():
            j = by_input[name].detach().numpy()
            in_ndim = values[name].ndim
            axes = tuple(range(j.ndim - in_ndim, j.ndim))
            term = np.sum(np.abs(j), axis=axes) * 0.5 * 10.0 ** -d
            total = term if total is None else total + term
        out[part] = total
    return out


def _torch_answer(torch, question: Question) -> Callable:
    from harness.run.adapters.torch_eager import build_loss

    if isinstance(question, Dense):
        units = question.w.shape[1]
        if question.bias_per_row:
            linear = _functional(torch, (LayerSpec(units=units, use_bias=False, kernel=question.w),), question.X.shape[1])
            act = _functional(torch, (identity_layer(units, question.activation, question.axis),), units)
            eye = torch.eye(units, dtype=torch.float64)
            return lambda v: act({"w": eye}, linear({"w": v["w"]}, v["X"]) + v["b"])
        layer = LayerSpec(units=units, activation=question.activation, use_bias=question.b is not None,
                          axis=question.axis, kernel=question.w)
        model = _functional(torch, (layer,), question.X.shape[1])
        return lambda v: model({"w": v["w"], **({"b": v["b"].reshape(-1).expand(units)} if "b" in v else {})}, v["X"])
    if isinstance(question, Activation):
        z = question.z if question.z.ndim == 2 else question.z.reshape(1, -1)
        axis = question.axis if question.z.ndim == 2 else -1
        model = _functional(torch, (identity_layer(z.shape[1], question.function, axis),), z.shape[1])
        eye = torch.eye(z.shape[1], dtype=torch.float64)
        return lambda v: model({"w": eye}, v["z"].reshape(z.shape)).reshape(question.z.shape)
    if isinstance(question, Loss):
        loss_fn = build_loss(torch, question.loss, question.clip)
        return lambda v: loss_fn(v["y_pred"], v["y_true"])
    model = _functional(torch, question.layers, question.X.shape[1])
    if isinstance(question, Network):
        if question.output != "output":
            return lambda v: torch.zeros((), dtype=torch.float64) * v["X"].sum()
        return lambda v: model(v, v["X"])
    loss_fn = build_loss(torch, question.loss, question.clip)
    labels = list(param_labels(len(question.layers), [l.use_bias for l in question.layers]))

    def gradient(params, X, y):
        return torch.func.grad(lambda p: loss_fn(model(p, X), y))(params)

    if isinstance(question, Gradient):
        return lambda v: gradient({k: v[k] for k in labels}, v["X"], v["y"])
    if question.optimizer["name"] != "sgd":
        raise ValueError("inputs_rounded_to on a train answer is implemented for sgd")
    from harness.run.plan import make_plan

    plan = make_plan(run_scenario_of(question), "float64")
    lr = float(question.optimizer["learning_rate"])

    def train(v):
        params = {k: v[k] for k in labels}
        for step in range(question.steps):
            idx = torch.from_numpy(plan.batch_indices(step))
            grads = gradient(params, v["X"][idx], v["y"][idx])
            params = {k: params[k] - lr * grads[k] for k in labels}
        return params

    return train


def _functional(torch, layers: tuple[LayerSpec, ...], input_dim: int) -> Callable:
    """``f(params by label in the reference layout, X) -> output`` through the torch adapter's model."""
    from harness.run.adapters.torch_eager import build_model

    scenario = in_memory_scenario(input_dim=input_dim, layers=layers, X=np.zeros((1, input_dim)), y=None)
    model, linears = build_model(torch, scenario, torch.float64)
    module_name = {id(p): n for n, p in model.named_parameters()}
    labels = param_labels(len(layers), [l.use_bias for l in layers])
    targets = {}
    for label, name in labels.items():
        i = int(name.split(".")[1])
        p = linears[i].weight if name.endswith("kernel") else linears[i].bias
        if p is not None:
            targets[label] = (module_name[id(p)], name.endswith("kernel"))

    def f(params, X):
        # the reference kernel (n_in, n_out) is torch's weight transposed (harness.run.layout)
        mapping = {m: (params[label].T if is_kernel else params[label]) for label, (m, is_kernel) in targets.items()
                   if label in params}
        return torch.func.functional_call(model, mapping, (X,))

    return f
