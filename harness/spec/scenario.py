"""Scenario files: the TOML format (a public contract, see README) and its loader.

Every field is validated here, so a bad file fails with one line naming the
file, the field and what was expected, before any framework runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import MISSING, BadInput
from harness.spec.data import DataSpec, check_data_spec, data_rows, target_columns
from harness.spec.fields import Table, read_toml
from harness.spec.initializers import Initializer, check_initializer
from harness.spec.names import check_name
from harness.spec.printed import half_unit
from harness.spec.tolerance import DEFAULT_TOLERANCES, Tolerance
from harness.spec.variants import expand_variants
from reference.activations import ACTIVATIONS
from reference.losses import CLIP_MODES, LOSSES
from reference.network import bias_name, kernel_name
from reference.optimizers import CONVENTIONS

DTYPES = ("float64", "float32")
FULL_BATCH = None

LAYER_OUTPUT_AXES = (-2, -1, 0, 1)  # a layer's output is (n, units)


@dataclass(frozen=True)
class LayerSpec:
    units: int
    activation: str = "linear"
    use_bias: bool = True
    axis: int = -1
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None
    kernel_initializer: Initializer | None = None
    bias_initializer: Initializer | None = None


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    learning_rate: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingSpec:
    loss: str
    optimizer: OptimizerSpec
    epochs: int
    batch_size: int | None = FULL_BATCH
    shuffle: bool = False
    shuffle_seed: int | None = None
    early_stop_tol: float | None = None
    clip: str = "none"


@dataclass(frozen=True)
class LabValue:
    """A number the lab printed, which the float64 reference must reproduce.

    ``what``: ``params`` (after ``step``), ``loss`` (at ``step``, before its
    update), ``gradient`` (at ``step``) or ``output`` (the model's output on the
    whole data set with the parameters before ``step``).
    """

    what: str
    step: int | str
    value: np.ndarray
    tolerance: np.ndarray  # per element: half a unit in the last printed digit (printed.half_unit), or atol
    param: str | None = None
    source: str = ""
    tolerance_rule: str = ""
    layer: int | None = None  # for ``output``: which layer's activations (None: the last layer)
    dtype: str = "float64"  # which reference run: float64 or float32
    convention: str | None = None  # which reference run, when the optimizer's conventions differ
    inputs_rounded_to: int | None = None  # the data was printed at this many decimals
    rounded_inputs: tuple[str, ...] = ("X", "y")  # which data arrays were printed rounded


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: Path
    source: str
    description: str
    data: DataSpec
    input_dim: int
    layers: tuple[LayerSpec, ...]
    training: TrainingSpec | None  # None: a forward-only scenario (no [training] table)
    tolerances: dict[str, Tolerance]
    lab_values: tuple[LabValue, ...] = ()
    # A control setting, never read from a file: run with the framework's rule that returns 32-bit
    # results from 64-bit inputs turned off (``Adapter.narrowing_rule``; Keras on JAX and torch).
    keep_64_bit: bool = False

    @property
    def trains(self) -> bool:
        return self.training is not None

    @property
    def max_steps(self) -> int:
        """The steps a run makes unless it stops early: epochs x batches per epoch (0 forward-only)."""
        return max_steps(self.training, data_rows(self.data))

    @property
    def training_spec(self) -> TrainingSpec:
        """The ``[training]`` table, for code that only runs on training scenarios."""
        if self.training is None:
            raise ValueError(f"{self.name} is forward-only: it has no [training] table")
        return self.training

    def param_names(self) -> list[str]:
        return list(self.param_shapes())

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's name (``layers.<i>.kernel``, ``layers.<i>.bias``) and shape, in layer order."""
        shapes: dict[str, tuple[int, ...]] = {}
        n_in = self.input_dim
        for i, layer in enumerate(self.layers):
            shapes[kernel_name(i)] = (n_in, layer.units)
            if layer.use_bias:
                shapes[bias_name(i)] = (layer.units,)
            n_in = layer.units
        return shapes


def rows_per_batch(training: TrainingSpec, rows: int) -> int:
    """The rows of a full batch on ``rows`` training rows."""
    return rows if training.batch_size is None else min(training.batch_size, rows)


def max_steps(training: TrainingSpec | None, rows: int) -> int:
    """epochs x batches per epoch on ``rows`` training rows (the last partial batch kept); 0 without training."""
    return 0 if training is None else training.epochs * math.ceil(rows / rows_per_batch(training, rows))


def layer_axis(t: Table, key: str = "axis") -> int:
    """A softmax axis of a dense layer's output ``(n, units)``: -2, -1 (the default), 0 or 1."""
    axis = t.integer(key, -1)
    if axis not in LAYER_OUTPUT_AXES:
        raise t.error(key, "an axis of the layer's output (n, units): -2, -1, 0 or 1", axis)
    return axis


def check_step(t: Table, key: str, *, last: int, what: str) -> int | str:
    """``"final"`` (the default) or a step index in ``[0, last]``; ``what`` says what ``last`` is."""
    raw = t.data.get(key, "final")
    if raw == "final":
        return "final"
    step = t.integer(key, minimum=0)
    if step > last:
        raise t.error(key, f"\"final\" or a step in [0, {last}] ({what})" if last >= 0
                      else "no step: the run makes none", step)
    return step


# --- optimisers: the options each accepts ------------------------------------

# Option -> how it is read. Keras' names (torch's RMSprop ``alpha`` is ``rho``); an
# omitted option takes the default of the convention computing it
# (``reference.optimizers.DEFAULTS``).
OPTIMIZER_OPTIONS: dict[str, dict[str, str]] = {
    "sgd": {"momentum": "fraction", "nesterov": "boolean", "convention": "convention"},
    "adam": {"beta_1": "fraction", "beta_2": "fraction", "epsilon": "non-negative", "amsgrad": "boolean",
             "convention": "convention"},
    "rmsprop": {"rho": "fraction", "momentum": "fraction", "epsilon": "non-negative", "centered": "boolean",
                "convention": "convention"},
}
_READ_OPTION = {
    "fraction": lambda t, key: t.number(key, minimum=0.0, below=1.0),
    "non-negative": lambda t, key: t.number(key, minimum=0.0),
    "boolean": lambda t, key: t.boolean(key),
    "convention": lambda t, key: t.string(key, choices=CONVENTIONS),
}


def parse_optimizer(t: Table) -> OptimizerSpec:
    """An optimizer table (scenario files and answer keys): name, learning rate, validated options."""
    name = t.string("name", choices=tuple(OPTIMIZER_OPTIONS))
    kinds = OPTIMIZER_OPTIONS[name]
    t.check_keys({"name", "learning_rate", *kinds})
    lr = t.number("learning_rate", minimum=0.0)
    options = {key: _READ_OPTION[kind](t, key) for key, kind in kinds.items() if t.has(key)}
    if options.get("nesterov") and not options.get("momentum"):
        raise t.error("nesterov", "nesterov = true only with momentum > 0 (torch.optim.SGD rejects it, "
                                  "Keras would silently run plain SGD)", True)
    return OptimizerSpec(name=name, learning_rate=lr, options=options)


# --- loader -------------------------------------------------------------------

TOP_KEYS = {"name", "title", "source", "description", "data", "model", "training", "tolerance", "lab_values"}
LAYER_KEYS = {"units", "activation", "use_bias", "axis", "kernel", "bias", "initializer", "bias_initializer"}
TRAINING_KEYS = {
    "loss", "optimizer", "batch_size", "epochs", "shuffle", "shuffle_seed", "early_stop_tol", "clip",
}


def _read(path: Path) -> dict[str, Any]:
    return read_toml(path, what="scenario file")


def load_scenarios(path: str | Path) -> list[Scenario]:
    """Every scenario of a file: one, or one per ``[[variants]]`` table."""
    path = Path(path)
    raw = _read(path)
    if "variants" not in raw:
        return [parse_scenario(raw, path=path)]
    return [parse_scenario(variant, path=path, where=where) for where, variant in expand_variants(raw, path=path)]


def parse_scenario(raw: dict[str, Any], *, path: Path, where: str = "") -> Scenario:
    """``where`` prefixes field names in errors (a variant: ``variants[2]``)."""
    try:
        return _parse(raw, path=path)
    except BadInput as exc:
        if not where:
            raise
        raise BadInput(exc.file, f"{where} ({raw.get('name')}): {exc.field}", exc.expected, exc.received) from None


def _parse(raw: dict[str, Any], *, path: Path) -> Scenario:
    top = Table(raw, file=path)
    top.check_keys(TOP_KEYS)
    name = check_name(top)
    model = top.sub("model")
    model.check_keys({"input_dim", "layers"})
    input_dim = model.integer("input_dim", minimum=1)

    layers, n_in = [], input_dim
    for lt in model.tables("layers"):
        lt.check_keys(LAYER_KEYS)
        units = lt.integer("units", minimum=1)
        activation = lt.string("activation", "linear", choices=tuple(ACTIVATIONS))
        use_bias = lt.boolean("use_bias", True)
        kernel = lt.array("kernel", None, ndim=2)
        if kernel is not None and kernel.shape != (n_in, units):
            raise lt.error("kernel", f"shape ({n_in}, {units}) = (n_in, units)", f"shape {kernel.shape}")
        bias = lt.array("bias", None, ndim=1) if use_bias else None
        if use_bias and bias is not None and bias.shape != (units,):
            raise lt.error("bias", f"shape ({units},)", f"shape {bias.shape}")
        if not use_bias and lt.has("bias"):
            raise lt.error("bias", "no bias when use_bias = false", lt.data["bias"])
        k_init = check_initializer(lt, "initializer") if lt.has("initializer") else None
        b_init = check_initializer(lt, "bias_initializer") if lt.has("bias_initializer") else None
        if kernel is None and k_init is None:
            raise lt.error("kernel", "an explicit kernel = [[...]] or an initializer = { name = ..., seed = ... }",
                           "neither")
        if kernel is not None and k_init is not None:
            raise lt.error("initializer", "either kernel or initializer, not both", "both")
        layers.append(LayerSpec(units=units, activation=activation, use_bias=use_bias,
                                axis=layer_axis(lt), kernel=kernel, bias=bias,
                                kernel_initializer=k_init, bias_initializer=b_init))
        n_in = units
    if not layers:
        raise model.error("layers", "at least one [[model.layers]] table", "none")

    training = _training(top.sub("training")) if top.has("training") else None

    tolerances = dict(DEFAULT_TOLERANCES)
    tol_table = top.sub("tolerance", required=False)
    tol_table.check_keys(set(DTYPES))
    for dtype in DTYPES:
        if tol_table.has(dtype):
            t = tol_table.sub(dtype)
            t.check_keys({"rtol", "atol", "ulps"})
            base = tolerances[dtype]
            tolerances[dtype] = Tolerance(rtol=tolerance_term(t, "rtol", base.rtol),
                                          atol=tolerance_term(t, "atol", base.atol),
                                          ulps=tolerance_term(t, "ulps", base.ulps), eps=base.eps)

    data = check_data_spec(top.sub("data"), input_dim=input_dim, needs_targets=training is not None)
    _check_targets(top, data, layers, trains=training is not None)
    scenario = Scenario(
        name=name, title=top.string("title", name), path=path, source=top.string("source", ""),
        description=top.string("description", ""), data=data,
        input_dim=input_dim, layers=tuple(layers), training=training, tolerances=tolerances,
    )
    lab_values = tuple(_lab_value(t, scenario) for t in top.tables("lab_values", required=False))
    return Scenario(**{**scenario.__dict__, "lab_values": lab_values})


def _check_targets(top: Table, data: DataSpec, layers: list[LayerSpec], *, trains: bool) -> None:
    """y has one column per unit of the last layer (a forward-only scenario may give no y at all)."""
    columns, units, last = target_columns(data), layers[-1].units, len(layers) - 1
    if columns == units or (columns == 0 and not trains):
        return
    outputs = f"model.layers[{last}].units = {units}, the model's outputs"
    if data.generator is None:
        raise top.sub("data").error("y", f"{_count(units, 'column')} ({outputs})", _count(columns, "column"))
    if data.generator == "teacher":
        teacher = top.sub("data").tables("teacher")[-1]
        raise teacher.error("kernel", f"{_count(units, 'column')} ({outputs}): the teacher's outputs are y",
                            _count(columns, "column"))
    raise top.sub("model").tables("layers")[last].error(
        "units", f"{columns} (generator {data.generator!r} makes {_count(columns, 'target column')})", units)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _training(tr: Table) -> TrainingSpec:
    tr.check_keys(TRAINING_KEYS)
    loss = tr.string("loss", choices=tuple(LOSSES))
    if not isinstance(tr.data.get("optimizer"), dict):
        raise tr.error("optimizer", "a table such as { name = \"sgd\", learning_rate = 0.1 }",
                       tr.data.get("optimizer", MISSING))
    optimizer = parse_optimizer(tr.sub("optimizer"))
    batch_raw = tr.data.get("batch_size", "full")
    if batch_raw == "full":
        batch_size = FULL_BATCH
    else:
        batch_size = tr.integer("batch_size", minimum=1)
    shuffle = tr.boolean("shuffle", False)
    shuffle_seed = tr.seed("shuffle_seed", None)
    if shuffle and shuffle_seed is None:
        raise tr.error("shuffle_seed", "an integer seed when shuffle = true (the harness owns the batch order)",
                       MISSING)
    return TrainingSpec(
        loss=loss, optimizer=optimizer, epochs=tr.integer("epochs", minimum=1), batch_size=batch_size,
        shuffle=shuffle, shuffle_seed=shuffle_seed,
        early_stop_tol=tr.number("early_stop_tol", None, minimum=0.0),
        clip=tr.string("clip", "none", choices=CLIP_MODES),
    )


LAB_WHATS = ("params", "loss", "gradient", "output")


def _steps_text(scenario: Scenario, what: str) -> str:
    """What bounds a lab value's step, for its error message."""
    training = scenario.training
    if training is None:
        return "a forward-only scenario: its output at step 0"
    rows = data_rows(scenario.data)
    size = rows_per_batch(training, rows)
    count = (f"{training.epochs} epochs x {math.ceil(rows / size)} batches of {size} of the {rows} rows "
             f"= {scenario.max_steps} steps")
    return count + (f"; step {scenario.max_steps} is the final output" if what == "output" else "")


def tolerance_term(t: Table, key: str, default: float) -> float:
    """A tolerance's ``rtol``, ``atol`` or ``ulps``: a finite number >= 0 (nan, inf and negative
    numbers refused). The one rule for a tolerance, wherever it is given: a scenario's
    ``[tolerance.<dtype>]`` or ``harness.testing``'s ``rtol=`` / ``atol=``."""
    return t.number(key, default, minimum=0.0)


def _lab_value(t: Table, scenario: Scenario) -> LabValue:
    t.check_keys({"what", "step", "param", "layer", "value", "decimals", "significant", "atol", "source",
                  "dtype", "convention", "inputs_rounded_to", "rounded_inputs"})
    what = t.string("what", choices=LAB_WHATS)
    if what != "output" and not scenario.trains:
        raise t.error("what", "\"output\" (a forward-only scenario, without [training], has no "
                      "parameters, gradients or losses to check)", what)
    last = scenario.max_steps if what == "output" else scenario.max_steps - 1
    step = check_step(t, "step", last=last, what=_steps_text(scenario, what))
    param = None
    if what in ("params", "gradient"):
        param = t.string("param", choices=tuple(scenario.param_names()))
    layer = None
    if what == "output" and t.has("layer"):
        layer = t.integer("layer", minimum=0)
        if layer >= len(scenario.layers):
            raise t.error("layer", f"a layer index below {len(scenario.layers)}", layer)
    elif t.has("layer"):
        raise t.error("layer", "no layer (it selects the activations of what = \"output\")", t.data["layer"])
    value = np.atleast_1d(t.array("value", allow_nonfinite=True))  # a diverged run prints nan
    if what == "loss" and value.size != 1:
        raise t.error("value", "one number (the batch loss)", f"shape {value.shape}")
    if what == "output":
        rows = data_rows(scenario.data)
        units = scenario.layers[len(scenario.layers) - 1 if layer is None else layer].units
        if value.size != rows * units:
            raise t.error("value", f"{rows * units} numbers for the outputs of shape ({rows}, {units})",
                          f"shape {value.shape}")
    if param is not None and value.size != int(np.prod(scenario.param_shapes()[param])):
        raise t.error("value", f"{np.prod(scenario.param_shapes()[param])} numbers for {param} "
                      f"of shape {scenario.param_shapes()[param]}", f"shape {value.shape}")
    if param is not None:
        value = value.reshape(scenario.param_shapes()[param])
    convention = t.string("convention", None, choices=CONVENTIONS)
    rounded = t.integer("inputs_rounded_to", None, minimum=0)
    if rounded is not None and (scenario.data.generator is not None):
        raise t.error("inputs_rounded_to", "inline data (X = [[...]], y = [[...]]): the rounded inputs are "
                      "perturbed one by one", f"generator {scenario.data.generator!r}")
    rounded_inputs = t.data.get("rounded_inputs", ["X", "y"])
    if (rounded is None and t.has("rounded_inputs")) or not isinstance(rounded_inputs, list) or not rounded_inputs \
            or any(v not in ("X", "y") for v in rounded_inputs):
        raise t.error("rounded_inputs", "a non-empty list of \"X\" and/or \"y\", with inputs_rounded_to",
                      rounded_inputs)
    rules = [k for k in ("decimals", "significant", "atol") if t.has(k)]
    if len(rules) != 1:
        raise t.error("decimals", "exactly one of decimals, significant or atol (the printed precision)",
                      rules or "none")
    if t.has("decimals"):
        d = t.integer("decimals", minimum=0)
        tolerance = half_unit(value, decimals=d)
        rule = f"{d} decimals printed: ±{float(half_unit(0.0, decimals=d)):.1e}"
    elif t.has("significant"):
        s = t.integer("significant", minimum=1)
        tolerance = half_unit(value, significant=s)
        rule = f"{s} significant digits printed: ±half a unit in the last, per element"
    else:
        a = t.number("atol", minimum=0.0)
        tolerance = np.full(value.shape, a)
        rule = f"atol {a:.1e}"
    return LabValue(what=what, step=step, value=value, tolerance=tolerance, param=param,
                    source=t.string("source", ""), tolerance_rule=rule, layer=layer,
                    dtype=t.string("dtype", "float64", choices=DTYPES), convention=convention,
                    inputs_rounded_to=rounded, rounded_inputs=tuple(rounded_inputs))
