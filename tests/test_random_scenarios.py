"""Random scenarios from the format's whole space agree across numpy, keras and torch.

Hypothesis draws small scenario files — 1-3 inputs, 2-8 rows, up to two hidden layers of 1-3 units,
every activation (softmax over the units or over the rows), with or without biases, every loss
with its matching output (MSE: any activation; binary cross-entropy: sigmoid; categorical:
softmax) and every guard, SGD (momentum, Nesterov), Adam (betas, epsilon, amsgrad) and RMSprop
(rho, momentum, epsilon, centered), full or mini-batches (partial last batches included), in order
or shuffled, with or without an early stop — writes each as TOML text, loads it through the real
loader and runs it through the runner in float64 and float32. Every pair must agree (or differ
only by an explained optimizer convention) with the default tolerances, and no run may crash.

Left out of the draw, because they are ill-conditioned rather than different arithmetic: a softmax
over an axis of length 1 (one unit, or axis 0 on a one-row batch). Its output is identically 1 and
its true gradient 0, but Keras' float32 softmax returns 0.99999994 there, which leaves gradients of
~1e-7 instead of 0; RMSprop and Adam divide a gradient by its own size, so that rounding noise
becomes a learning-rate-sized step (measured: 5.7e-6 on a bias after one RMSprop step, lr 0.01).

Bounded and reproducible: 12 examples, derandomized (the same 12 on every run), no shrinking (each
example runs three frameworks in two dtypes, ~1 s), no example database; the whole test takes
about 15-25 s. A failure prints the scenario as a file (``note`` and the assertion message):
save it as ``failing.toml`` and run ``nn-parity run failing.toml``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from harness.pipeline import run_scenario
from harness.spec.scenario import load_scenarios

pytestmark = pytest.mark.slow

HIDDEN_ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "exponential", "softmax"]
MSE_OUTPUTS = ["linear", "sigmoid", "tanh", "relu", "exponential", "softmax"]


def _value(v: Any) -> str:
    """A TOML value: numbers, booleans, strings, arrays and inline tables."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    return "[" + ", ".join(_value(x) for x in v) + "]"


def _table(header: str, fields: dict[str, Any]) -> list[str]:
    return [header] + [f"{k} = {_value(v)}" for k, v in fields.items()] + [""]


def to_toml(scenario: dict[str, Any]) -> str:
    lines = [f'name = "{scenario["name"]}"', ""]
    lines += _table("[data]", scenario["data"])
    lines += _table("[model]", {"input_dim": scenario["input_dim"]})
    for layer in scenario["layers"]:
        lines += _table("[[model.layers]]", layer)
    lines += _table("[training]", scenario["training"])
    return "\n".join(lines)


def _numbers(draw: st.DrawFn, rows: int, columns: int, bound: float = 1.0) -> list[list[float]]:
    element = st.integers(-int(bound * 100), int(bound * 100)).map(lambda i: i / 100)
    return draw(st.lists(st.lists(element, min_size=columns, max_size=columns), min_size=rows, max_size=rows))


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A small scenario in the format's dict form (``to_toml`` writes it)."""
    input_dim, n = draw(st.integers(1, 3)), draw(st.integers(2, 8))
    loss = draw(st.sampled_from(["mse", "binary_crossentropy", "categorical_crossentropy"]))
    if loss == "mse":
        out_units, out_activation = draw(st.integers(1, 2)), draw(st.sampled_from(MSE_OUTPUTS))
        y: list[list[float]] | list[list[int]] = _numbers(draw, n, out_units)
    elif loss == "binary_crossentropy":
        out_units, out_activation = draw(st.integers(1, 2)), "sigmoid"
        y = draw(st.lists(st.lists(st.integers(0, 1), min_size=out_units, max_size=out_units),
                          min_size=n, max_size=n))
    else:
        out_units, out_activation = draw(st.integers(2, 3)), "softmax"
        y = [[int(k == c) for k in range(out_units)] for c in draw(st.lists(st.integers(0, out_units - 1),
                                                                           min_size=n, max_size=n))]
    batch_size = draw(st.sampled_from(["full", *range(1, n + 1)]))
    one_row_batch = batch_size != "full" and (batch_size == 1 or n % batch_size == 1)
    hidden = draw(st.lists(st.tuples(st.integers(1, 3), st.sampled_from(HIDDEN_ACTIVATIONS)), max_size=2))
    if out_activation == "softmax":
        out_units = max(out_units, 2)  # a softmax over one unit is constant (module docstring)
        y = y if loss != "mse" else _numbers(draw, n, out_units)
    hidden = [(max(units, 2) if activation == "softmax" else units, activation) for units, activation in hidden]
    layers, n_in = [], input_dim
    for i, (units, activation) in enumerate([*hidden, (out_units, out_activation)]):
        layer: dict[str, Any] = {"units": units, "activation": activation}
        if activation == "softmax" and i < len(hidden) and not one_row_batch:
            layer["axis"] = draw(st.sampled_from([-1, 0]))  # the output's softmax stays over its units
        layer["kernel"] = _numbers(draw, n_in, units)
        if draw(st.booleans()):
            layer["bias"] = _numbers(draw, 1, units, bound=0.5)[0]
        else:
            layer["use_bias"] = False
        layers.append(layer)
        n_in = units

    name = draw(st.sampled_from(["sgd", "adam", "rmsprop"]))
    optimizer: dict[str, Any] = {"name": name, "learning_rate": draw(st.sampled_from([0.001, 0.01, 0.05, 0.1]))}
    if name == "sgd":
        momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
        if momentum:
            optimizer["momentum"] = momentum
            if draw(st.booleans()):
                optimizer["nesterov"] = True
    elif name == "adam":
        options = {"beta_1": st.sampled_from([0.5, 0.9]), "beta_2": st.sampled_from([0.9, 0.999]),
                   "epsilon": st.sampled_from([1e-7, 1e-4]), "amsgrad": st.booleans()}
        optimizer.update({k: draw(v) for k, v in options.items() if draw(st.booleans())})
    else:
        options = {"rho": st.sampled_from([0.8, 0.9]), "momentum": st.sampled_from([0.0, 0.5]),
                   "epsilon": st.sampled_from([1e-6, 1e-3]), "centered": st.booleans()}
        optimizer.update({k: draw(v) for k, v in options.items() if draw(st.booleans())})
    training: dict[str, Any] = {"loss": loss, "optimizer": optimizer}
    if loss != "mse":
        training["clip"] = draw(st.sampled_from(["none", "keras", "torch"]))
    training["batch_size"] = batch_size
    training["epochs"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        training["shuffle"], training["shuffle_seed"] = True, draw(st.integers(0, 1000))
    if draw(st.booleans()):
        training["early_stop_tol"] = 1e-3
    return {"name": "random-scenario", "data": {"X": _numbers(draw, n, input_dim, bound=2.0), "y": y},
            "input_dim": input_dim, "layers": layers, "training": training}


@settings(max_examples=12, derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spec=scenarios())
def test_random_scenario_agrees_across_frameworks(spec, tmp_path_factory):
    text = to_toml(spec)
    note(f"the scenario, as a file:\n{text}")
    path = Path(tmp_path_factory.mktemp("random")) / "random-scenario.toml"
    path.write_text(text, encoding="utf-8")
    [scenario] = load_scenarios(path)  # the real loader: the drawn file is a valid scenario
    result = run_scenario(scenario)
    problems = [f"{label} ({dtype}) {run.status}: {run.message}" for (label, dtype), run in result.runs.items()
                if run.status != "ok"]
    problems += [c.describe_failure(scenario.name) for c in result.comparisons if not c.ok]
    assert not problems, "\n".join(problems) + f"\n\nthe scenario, as a file:\n{text}"
    assert len(result.comparisons) >= 6  # every pair in both dtypes was compared
