"""A scenario's Keras model, optimizer and loss, built once per worker and reused.

Building a Keras model and compiling its training step costs far more than a small scenario's run
(on TensorFlow, tracing its ``tf.function``\\s; on JAX, ``jax.jit``). A worker therefore keeps the
models it built (``model_for``: the ``BUILT_KEPT`` most recently used), one for each backend, dtype
and ``network_key`` (what the model, the optimizer and the loss are built from, nothing a run
hands in: data, initial weights, batch order), and resets one before each use: the plan's initial
parameters, and the optimizer's variables (iterations, slots, learning rate) as they were when
built. Runs, control runs, traced steps, forward passes, gradients and dtype probes share it.

Each backend's way of training (``KerasModel``'s subclasses: ``keras_tf_loop``, ``keras_jax``,
``keras_torch``) is one strategy with the same methods; the adapters never branch on the backend.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, ClassVar, Iterator, TypeVar

import numpy as np

from harness.run.adapters.protocol import Params
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory
from harness.spec.scenario import Scenario


def to_numpy(x: Any) -> np.ndarray:
    """A copy of a tensor's values (torch, TensorFlow or JAX)."""
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu()
    elif hasattr(x, "numpy"):  # a TensorFlow tensor or variable
        x = x.numpy()
    return np.array(x)


class KerasModel(ABC):
    """The scenario's Keras model (``keras_tf.build_model``), optimizer (``build_optimizer``, built on
    the model's variables) and loss (``build_loss``), and the backend's way of training them."""

    backend: ClassVar[str]

    def __init__(self, scenario: Scenario, dtype: str) -> None:
        from harness.run.adapters import keras_tf

        self.scenario, self.dtype = scenario, dtype
        self.convention = ""
        self.keras = keras = self.import_keras()
        with self.settings():
            self.model, self.layers = keras_tf.build_model(keras, scenario, dtype)
            self.names, self.variables = (list(x) for x in zip(*keras_tf.named_variables(self.layers)))
            if scenario.training is not None:
                training = scenario.training
                adapter = self.convention_adapter()  # None: Keras on TensorFlow's, build_optimizer's default
                self.optimizer, self.convention = keras_tf.build_optimizer(
                    keras, training.optimizer, file=scenario.path, **({} if adapter is None else {"adapter": adapter}))
                self.loss_fn = keras_tf.build_loss(keras, training.loss, training.clip)
                self.optimizer.build(self.variables)
                self._initial_state = [to_numpy(v.value) for v in self.optimizer.variables]

    @contextlib.contextmanager
    def settings(self) -> Iterator[None]:
        """Keras' float type for the run's dtype: in force whenever the model computes or is traced."""
        from harness.run.adapters import keras_tf

        with keras_tf.floatx(self.keras, self.dtype):
            yield

    def reset(self, params: Params) -> None:
        """The parameters ``params`` and, when it trains, the optimizer as built (no step taken)."""
        from harness.run.adapters import keras_tf

        keras_tf.set_params(self.layers, params)
        if self.scenario.training is not None:
            for v, value in zip(self.optimizer.variables, self._initial_state):
                v.assign(value)

    def params(self) -> Params:
        return {n: to_numpy(v.value) for n, v in zip(self.names, self.variables)}

    def outputs(self, X: np.ndarray) -> list[np.ndarray]:
        """Each layer's activations on X, by calling the Keras layers in turn."""
        out, a = [], X
        for layer in self.layers:
            a = layer(a)
            out.append(to_numpy(a))
        return out

    # --- what each backend does its own way ------------------------------------------
    @abstractmethod
    def import_keras(self) -> Any:
        """The Keras module, on this backend."""

    def convention_adapter(self) -> Any:
        """The adapter whose convention the optimizer computes (``keras_tf.build_optimizer``'s default: None)."""
        return None

    def first_outputs(self, X: np.ndarray) -> tuple[list[np.ndarray], dict[str, str]]:
        """``outputs``, and the operations of the forward pass that returned a narrower float than their
        float64 inputs (Keras function -> dtype; none on TensorFlow)."""
        return self.outputs(X), {}

    @abstractmethod
    def train(self, plan: TrainingPlan, trajectory: Trajectory) -> None:
        """Every step of the plan from the reset state, recorded in ``trajectory``."""

    @abstractmethod
    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        """Steps ``0 .. step-1`` as the run makes them, then step ``step`` stage by stage, as
        ``harness.run.trajectory.trace_stages`` names them."""

    @abstractmethod
    def loss_and_grads(self, xb: np.ndarray, yb: np.ndarray) -> tuple[Any, list[Any]]:
        """The loss and the gradients (in ``self.variables`` order) at the current parameters."""


M = TypeVar("M", bound=KerasModel)
_BUILT: "OrderedDict[tuple[Any, ...], KerasModel]" = OrderedDict()
BUILT_KEPT = 16  # models (and their compiled functions) a worker keeps, the least recently used dropped first


def network_key(scenario: Scenario) -> tuple[Any, ...]:
    """Everything of a scenario that a ``KerasModel`` is built from (the network, its training's loss
    and optimizer, the control setting), nothing it is handed per run (data, initial weights, batch
    order)."""
    training = scenario.training
    return (scenario.input_dim, tuple((s.units, s.activation, s.use_bias, s.axis) for s in scenario.layers),
            scenario.keep_64_bit, None if training is None else (
                training.loss, training.clip, training.optimizer.name, training.optimizer.learning_rate,
                tuple(sorted((k, repr(v)) for k, v in training.optimizer.options.items()))))


def model_for(kind: type[M], plan: TrainingPlan, *, keep: bool = True) -> M:
    """The worker's ``kind`` of model for the plan's network, training and dtype (built at the first
    call), reset to the plan's initial parameters and a fresh optimizer state. ``keep=False`` builds a
    new one and keeps nothing (a process where a test may have monkeypatched Keras or a builder: a
    kept model would not see the patch)."""
    if keep:
        key = (kind, plan.dtype, network_key(plan.scenario))
        kept = _BUILT.pop(key, None)
        m = kept if isinstance(kept, kind) else kind(plan.scenario, plan.dtype)
        _BUILT[key] = m
        while len(_BUILT) > BUILT_KEPT:
            _BUILT.popitem(last=False)
    else:
        m = kind(plan.scenario, plan.dtype)
    with m.settings():
        m.reset(plan.initial_params)
    return m


def run_model(m: KerasModel, plan: TrainingPlan, *, framework: str) -> Trajectory:
    """The plan's run on the reset model ``m`` (``model_for``): the outputs before and after, and every
    step (``KerasModel.train``)."""
    with m.settings():
        outputs, narrowed = m.first_outputs(plan.X)
        trajectory = Trajectory(framework=framework, dtype=plan.dtype, convention=m.convention,
                                initial_params={k: v.copy() for k, v in plan.initial_params.items()},
                                outputs_initial=outputs, narrowed_ops=narrowed)
        if plan.scenario.training is None:
            trajectory.outputs_final = trajectory.outputs_initial
            return trajectory
        m.train(plan, trajectory)
        trajectory.outputs_final = m.outputs(plan.X)
        return trajectory


def forward_plan(scenario: Scenario, params: Params, X: np.ndarray, y: np.ndarray | None = None) -> TrainingPlan:
    """A one-batch plan carrying ``params`` and ``X`` (what ``model_for`` resets a model to)."""
    n = X.shape[0]
    return TrainingPlan(scenario=scenario, dtype=X.dtype.name, X=X, y=X[:, :0] if y is None else y,
                        initial_params=params, orders=np.arange(n)[None, :], bounds=((0, n),))
