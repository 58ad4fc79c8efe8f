"""Scenario files: the TOML format (a public contract, see README) and its loader.

Every field is validated here, so a bad file fails with one line naming the
file, the field and what was expected, before any framework runs.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.conventions import CONVENTIONS
from harness.errors import MISSING, BadInput
from harness.toml_fields import Table
from reference.activations import ACTIVATIONS
from reference.losses import CLIP_MODES, LOSSES

DTYPES = ("float64", "float32")
FULL_BATCH = None


def catalogue_dir() -> Path:
    """The scenario catalogue: ``$NN_PARITY_SCENARIOS`` or ``scenarios/`` beside the packages."""
    override = os.environ.get("NN_PARITY_SCENARIOS")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "scenarios"


@dataclass(frozen=True)
class Tolerance:
    """Element-wise test ``|a - b| <= atol + rtol * max(|a|, |b|)``."""

    rtol: float
    atol: float


# Defaults per dtype. float64: every framework computes the same formulas in
# IEEE double; only the summation order of the batch means differs, so runs
# agree to a few ulps per step and the differences stay ~1e-13 over 5000 steps.
# float32: the same rounding in single precision (eps 1.2e-7), grown over the
# trajectory.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-12, atol=1e-14),
    "float32": Tolerance(rtol=1e-5, atol=1e-7),
}


@dataclass(frozen=True)
class Initializer:
    name: str
    options: dict[str, Any]


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
class DataSpec:
    X: np.ndarray | None = None
    y: np.ndarray | None = None
    generator: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


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
    tolerance: np.ndarray
    param: str | None = None
    source: str = ""
    tolerance_rule: str = ""


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
    training: TrainingSpec
    tolerances: dict[str, Tolerance]
    lab_values: tuple[LabValue, ...] = ()

    def param_names(self) -> list[str]:
        names = []
        for i, layer in enumerate(self.layers):
            names.append(f"layers.{i}.kernel")
            if layer.use_bias:
                names.append(f"layers.{i}.bias")
        return names

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes, n_in = {}, self.input_dim
        for i, layer in enumerate(self.layers):
            shapes[f"layers.{i}.kernel"] = (n_in, layer.units)
            if layer.use_bias:
                shapes[f"layers.{i}.bias"] = (layer.units,)
            n_in = layer.units
        return shapes


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


def _optimizer(t: Table) -> OptimizerSpec:
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


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(path, "", "an existing scenario file or a catalogue name", str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(path, "", "valid TOML", str(exc)) from None
    return parse_scenario(raw, path=path)


def parse_scenario(raw: dict[str, Any], *, path: Path) -> Scenario:
    from harness.data import check_data_spec
    from harness.initializers import check_initializer

    top = Table(raw, file=path)
    top.check_keys(TOP_KEYS)
    name = top.string("name")
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
                                axis=lt.integer("axis", -1), kernel=kernel, bias=bias,
                                kernel_initializer=k_init, bias_initializer=b_init))
        n_in = units
    if not layers:
        raise model.error("layers", "at least one [[model.layers]] table", "none")

    tr = top.sub("training")
    tr.check_keys(TRAINING_KEYS)
    loss = tr.string("loss", choices=tuple(LOSSES))
    if not isinstance(tr.data.get("optimizer"), dict):
        raise tr.error("optimizer", "a table such as { name = \"sgd\", learning_rate = 0.1 }",
                       tr.data.get("optimizer", MISSING))
    optimizer = _optimizer(tr.sub("optimizer"))
    batch_raw = tr.data.get("batch_size", "full")
    if batch_raw == "full":
        batch_size = FULL_BATCH
    else:
        batch_size = tr.integer("batch_size", minimum=1)
    shuffle = tr.boolean("shuffle", False)
    shuffle_seed = tr.integer("shuffle_seed", None, minimum=0)
    if shuffle and shuffle_seed is None:
        raise tr.error("shuffle_seed", "an integer seed when shuffle = true (the harness owns the batch order)",
                       MISSING)
    training = TrainingSpec(
        loss=loss, optimizer=optimizer, epochs=tr.integer("epochs", minimum=1), batch_size=batch_size,
        shuffle=shuffle, shuffle_seed=shuffle_seed,
        early_stop_tol=tr.number("early_stop_tol", None, minimum=0.0),
        clip=tr.string("clip", "none", choices=CLIP_MODES),
    )

    tolerances = dict(DEFAULT_TOLERANCES)
    tol_table = top.sub("tolerance", required=False)
    tol_table.check_keys(set(DTYPES))
    for dtype in DTYPES:
        if tol_table.has(dtype):
            t = tol_table.sub(dtype)
            t.check_keys({"rtol", "atol"})
            base = tolerances[dtype]
            tolerances[dtype] = Tolerance(rtol=t.number("rtol", base.rtol, minimum=0.0),
                                          atol=t.number("atol", base.atol, minimum=0.0))

    scenario = Scenario(
        name=name, title=top.string("title", name), path=path, source=top.string("source", ""),
        description=top.string("description", ""), data=check_data_spec(top.sub("data"), input_dim=input_dim),
        input_dim=input_dim, layers=tuple(layers), training=training, tolerances=tolerances,
    )
    lab_values = tuple(_lab_value(t, scenario) for t in top.tables("lab_values", required=False))
    return Scenario(**{**scenario.__dict__, "lab_values": lab_values})


LAB_WHATS = ("params", "loss", "gradient", "output")


def _lab_value(t: Table, scenario: Scenario) -> LabValue:
    t.check_keys({"what", "step", "param", "value", "decimals", "significant", "atol", "source"})
    what = t.string("what", choices=LAB_WHATS)
    step_raw = t.data.get("step", "final")
    step: int | str = "final" if step_raw == "final" else t.integer("step", minimum=0)
    param = None
    if what in ("params", "gradient"):
        param = t.string("param", choices=tuple(scenario.param_names()))
    value = np.atleast_1d(t.array("value"))
    if param is not None and value.size != int(np.prod(scenario.param_shapes()[param])):
        raise t.error("value", f"{np.prod(scenario.param_shapes()[param])} numbers for {param} "
                      f"of shape {scenario.param_shapes()[param]}", f"shape {value.shape}")
    if param is not None:
        value = value.reshape(scenario.param_shapes()[param])
    rules = [k for k in ("decimals", "significant", "atol") if t.has(k)]
    if len(rules) != 1:
        raise t.error("decimals", "exactly one of decimals, significant or atol (the printed precision)",
                      rules or "none")
    if t.has("decimals"):
        d = t.integer("decimals", minimum=0)
        tolerance = np.full(value.shape, 0.5 * 10.0 ** -d)
        rule = f"{d} decimals printed: ±{0.5 * 10.0 ** -d:.1e}"
    elif t.has("significant"):
        s = t.integer("significant", minimum=1)
        mag = np.floor(np.log10(np.where(value == 0, 1.0, np.abs(value))))
        tolerance = 0.5 * 10.0 ** (mag - s + 1)
        rule = f"{s} significant digits printed: ±half a unit in the last, per element"
    else:
        a = t.number("atol", minimum=0.0)
        tolerance = np.full(value.shape, a)
        rule = f"atol {a:.1e}"
    return LabValue(what=what, step=step, value=value, tolerance=tolerance, param=param,
                    source=t.string("source", ""), tolerance_rule=rule)


# --- catalogue ------------------------------------------------------------------

def catalogue() -> list[Path]:
    return sorted(catalogue_dir().glob("*.toml"))


def resolve(name_or_path: str) -> Scenario:
    """A scenario file path, or the name of a catalogue scenario."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_scenario(candidate)
    for path in catalogue():
        if path.stem == name_or_path:
            return load_scenario(path)
    known = [p.stem for p in catalogue()]
    raise BadInput(name_or_path, "", f"a scenario file or one of the catalogue names {known}", name_or_path)
