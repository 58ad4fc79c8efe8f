"""Each answer computed by the reference, Keras and PyTorch, through their adapters: in float64, or
in the ``dtype`` a scenario answer pins (and in its pinned optimizer convention: a framework whose
optimizer class cannot compute it is skipped for that answer, with the reason).

Single computations (dense, activation, network, loss) are one forward pass (or one
loss) through each adapter (``Adapter.forward``, ``Adapter.loss``); ``keep_64_bit`` computes
them, and the runs, with a framework's dtype rule turned off (``Scenario.keep_64_bit``: the
control the answer checks make for Keras on JAX and torch, ``harness.answers.verdicts``); an activation of
``z`` is a bias-free dense layer with the identity kernel (``z @ I = z`` exactly).
Gradient, train and scenario answers are training runs: an in-memory scenario goes
through ``harness.run.plan`` and every adapter (``harness.pipeline.run_scenario``),
exactly as ``nn-parity run`` does. ``reference_values`` is the reference's answer alone
(what the propagation from rounded inputs re-computes).

The result of one framework is ``{part: array}`` or an error message (a crash is a
result to report, not a harness failure).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.answers.labels import param_labels
from harness.answers.questions import (
    ActivationQuestion,
    DenseQuestion,
    GradientQuestion,
    LossQuestion,
    NetworkQuestion,
    Question,
    ScenarioQuestion,
    TrainQuestion,
    epochs_for,
    history_epochs,
    parts,
)
from harness.errors import BadInput, exception_line
from harness.judge.result import reference_label
from harness.pipeline import run_scenario
from harness.run.adapters import FRAMEWORKS, REFERENCE, adapter
from harness.run.adapters.protocol import check_expressible
from harness.run.plan import TrainingPlan
from harness.run.quantities import value_at
from harness.run.trajectory import Trajectory
from harness.spec.data import DataSpec
from harness.spec.scenario import LayerSpec, OptimizerSpec, Scenario, TrainingSpec
from harness.spec.tolerance import DEFAULT_TOLERANCES
from reference.network import bias_name, kernel_name

Values = dict[str, np.ndarray]
DTYPE = "float64"


def in_memory_scenario(*, input_dim: int, layers: tuple[LayerSpec, ...], X: np.ndarray, y: np.ndarray | None,
                       loss: str = "mse", clip: str = "none", optimizer: OptimizerSpec | None = None,
                       batch_size: int | None = None, epochs: int = 1, keep_64_bit: bool = False) -> Scenario:
    """A scenario made from an answer's inputs (no file); data in the order given, never shuffled."""
    y = np.zeros((X.shape[0], layers[-1].units)) if y is None else y
    training = TrainingSpec(loss=loss, optimizer=optimizer or OptimizerSpec("sgd", 0.0), epochs=epochs,
                            batch_size=batch_size, clip=clip)
    return Scenario(name="answer", title="answer", path=Path("<answer>"), source="", description="",
                    data=DataSpec(X=X, y=y), input_dim=input_dim, layers=layers, training=training,
                    tolerances=dict(DEFAULT_TOLERANCES), keep_64_bit=keep_64_bit)


def identity_layer(units: int, activation: str, axis: int) -> LayerSpec:
    return LayerSpec(units=units, activation=activation, use_bias=False, axis=axis, kernel=np.eye(units))


def layer_params(layers: tuple[LayerSpec, ...]) -> dict[str, np.ndarray]:
    params = {}
    for i, layer in enumerate(layers):
        assert layer.kernel is not None, "an answer's layers carry their kernels"
        params[kernel_name(i)] = layer.kernel
        if layer.use_bias:
            assert layer.bias is not None, "an answer's layer with a bias carries it"
            params[bias_name(i)] = layer.bias
    return params


def compute_all(question: Question, *, frameworks: tuple[str, ...] = FRAMEWORKS,
                keep_64_bit: bool = False) -> dict[str, Values | str]:
    """framework -> the answer's parts, or why it could not be computed (``keep_64_bit``: with the
    frameworks' dtype rules turned off)."""
    if isinstance(question, (GradientQuestion, TrainQuestion, ScenarioQuestion)):
        return _from_runs(question, frameworks, keep_64_bit)
    out: dict[str, Values | str] = {}
    for framework in frameworks:
        module = adapter(framework)
        reason = module.available()
        if reason is not None:
            out[framework] = f"skipped: {reason}"
            continue
        try:
            out[framework] = {"value": np.asarray(_single(question, framework, keep_64_bit), dtype=np.float64)}
        except Exception as exc:  # a framework crash is reported with the answer
            out[framework] = f"crashed: {exception_line(exc)}"
    return out


def reference_values(question: Question) -> Values:
    """The NumPy reference's parts of the answer alone (``ValueError`` when it cannot compute them)."""
    values = compute_all(question, frameworks=(REFERENCE,))[REFERENCE]
    if isinstance(values, str):
        raise ValueError(f"the reference: {values}")
    return values


# --- single forward computations -----------------------------------------------

def network_output(framework: str, layers: tuple[LayerSpec, ...], X: np.ndarray,
                   keep_64_bit: bool = False) -> np.ndarray:
    """The network's output in one framework, through its adapter."""
    scenario = in_memory_scenario(input_dim=X.shape[1], layers=layers, X=X, y=None, keep_64_bit=keep_64_bit)
    return adapter(framework).forward(scenario, layer_params(layers), X)[-1]


def _single(question: Question, framework: str, keep_64_bit: bool) -> np.ndarray:
    if isinstance(question, DenseQuestion):
        return _dense(question, framework, keep_64_bit)
    if isinstance(question, ActivationQuestion):
        z = question.z if question.z.ndim == 2 else question.z.reshape(1, -1)
        axis = question.axis if question.z.ndim == 2 else -1
        layer = identity_layer(z.shape[1], question.function, axis)
        return network_output(framework, (layer,), z, keep_64_bit).reshape(question.z.shape)
    if isinstance(question, NetworkQuestion):
        return network_answer(question, network_output(framework, question.layers, question.X, keep_64_bit))
    if isinstance(question, LossQuestion):
        return _loss(question, framework, keep_64_bit)
    raise TypeError(question)


def _dense(q: DenseQuestion, framework: str, keep_64_bit: bool) -> np.ndarray:
    units = q.w.shape[1]
    if not q.bias_per_row:
        bias = None if q.b is None else q.unit_bias()
        layer = LayerSpec(units=units, activation=q.activation, use_bias=bias is not None, axis=q.axis,
                          kernel=q.w, bias=bias)
        return network_output(framework, (layer,), q.X, keep_64_bit)
    # The lab's n x q bias, one per observation: z = X @ w (the framework) + b, then the activation.
    z = network_output(framework, (LayerSpec(units=units, use_bias=False, kernel=q.w),), q.X, keep_64_bit) + q.b
    return network_output(framework, (identity_layer(units, q.activation, q.axis),), z, keep_64_bit)


def network_answer(q: NetworkQuestion, output: np.ndarray) -> np.ndarray:
    """output as is, the predicted class, or the accuracy against ``y``."""
    if q.output == "output":
        return output
    predicted = predictions(output)
    if q.output == "prediction":
        return predicted
    assert q.y is not None, "an accuracy answer has its targets y (checked by the key loader)"
    return np.asarray(np.mean(predicted == predictions(q.y)))


def predictions(values: np.ndarray) -> np.ndarray:
    """The class of each row: one column, p > 0.5 (of a 0/1 label: the label itself); several columns,
    the argmax (of one-hot labels: the label)."""
    if values.shape[-1] == 1:
        return (values[..., 0] > 0.5).astype(np.float64)
    return np.argmax(values, axis=-1).astype(np.float64)


def _loss(q: LossQuestion, framework: str, keep_64_bit: bool) -> np.ndarray:
    """The loss of ``y_pred`` through a scenario that carries the loss and its guard (its one
    identity layer is not computed)."""
    units = q.y_pred.shape[-1] if q.y_pred.ndim else 1
    scenario = in_memory_scenario(input_dim=units, layers=(identity_layer(units, "linear", -1),),
                                  X=np.zeros((1, units)), y=np.zeros((1, units)), loss=q.loss, clip=q.clip,
                                  keep_64_bit=keep_64_bit)
    return adapter(framework).loss(scenario, q.y_true, q.y_pred)


# --- training runs ----------------------------------------------------------------

def run_scenario_of(question: GradientQuestion | TrainQuestion | ScenarioQuestion) -> Scenario:
    if isinstance(question, ScenarioQuestion):
        return question.scenario
    if isinstance(question, GradientQuestion):  # one step at learning rate 0: the gradients at the given parameters
        return in_memory_scenario(input_dim=question.X.shape[1], layers=question.layers, X=question.X,
                                  y=question.y, loss=question.loss, clip=question.clip)
    return in_memory_scenario(input_dim=question.X.shape[1], layers=question.layers, X=question.X, y=question.y,
                              loss=question.loss, clip=question.clip, optimizer=question.optimizer,
                              batch_size=question.batch_size, epochs=epochs_for(question))


def _from_runs(question: GradientQuestion | TrainQuestion | ScenarioQuestion, frameworks: tuple[str, ...],
               keep_64_bit: bool) -> dict[str, Values | str]:
    scenario = replace(run_scenario_of(question), keep_64_bit=keep_64_bit)
    out: dict[str, Values | str] = {}
    runnable = []
    for framework in frameworks:  # a framework whose optimizer class cannot compute the pinned convention
        spec = None if scenario.training is None else scenario.training.optimizer
        try:
            if spec is not None:
                check_expressible(adapter(framework), spec, file=scenario.path)
            runnable.append(framework)
        except BadInput as exc:
            assert spec is not None, "only a pinned optimizer convention is refused"
            out[framework] = f"skipped: it cannot compute convention {exc.received!r} (its optimizer class " \
                             f"computes {adapter(framework).native_convention(spec)!r})"
    dtype = question.dtype if isinstance(question, ScenarioQuestion) else DTYPE
    result = run_scenario(scenario, frameworks=tuple(runnable), dtypes=(dtype,))
    plan = result.plans[dtype]
    for framework in runnable:
        # an unpinned optimizer whose conventions differ runs the reference as numpy[keras] and numpy[torch];
        # a scenario answer that depends on the convention pins one (questions._convention), so the two
        # reference runs only differ where the answer does not (step 0's loss, gradients or outputs)
        label = framework if (framework, dtype) in result.runs else reference_label(result, None)
        assert label is not None, "the reference ran (it is one of the runnable frameworks)"
        run = result.runs[(label, dtype)]
        if not run.ok:
            out[framework] = f"{run.status}: {run.message}"
            continue
        try:
            out[framework] = _values_of_run(question, run, plan)
        except (IndexError, ValueError) as exc:
            out[framework] = f"not reached: {exc}"
    return out


def epoch_losses(run: Trajectory, plan: TrainingPlan) -> np.ndarray:
    """The loss of each epoch the run completed: its batches' losses weighted by their rows, as Keras'
    ``loss`` tracker (a ``Mean`` updated with ``sample_weight`` = the batch's rows) reports it in
    ``hist.history``."""
    rows = np.array([end - start for start, end in plan.bounds], dtype=np.float64)
    epochs = run.steps // len(rows)
    losses = np.asarray(run.losses[:epochs * len(rows)], dtype=np.float64).reshape(epochs, len(rows))
    return np.asarray(losses @ rows / rows.sum(), dtype=np.float64)


def _history(question: ScenarioQuestion, run: Trajectory, plan: TrainingPlan) -> np.ndarray:
    losses, wanted = epoch_losses(run, plan), history_epochs(question)
    if len(wanted) and wanted[-1] >= len(losses):
        raise ValueError(f"epoch {wanted[-1] + 1} is beyond the {len(losses)} epochs the run completed")
    return losses[list(wanted)]


def _values_of_run(question: GradientQuestion | TrainQuestion | ScenarioQuestion, run: Trajectory,
                   plan: TrainingPlan) -> Values:
    layers = plan.scenario.layers
    labels = param_labels(layers)
    if isinstance(question, GradientQuestion):
        return {label: run.grads[name][0] for label, name in labels.items()}
    if isinstance(question, TrainQuestion):
        if run.steps < question.steps:
            raise ValueError(f"the run stopped after {run.steps} of {question.steps} steps")
        return {label: run.params[name][question.steps - 1] for label, name in labels.items()}
    if question.quantity == "history":
        return {"loss": _history(question, run, plan)}
    what = {"params": "params", "gradient": "gradient", "loss": "loss", "output": "output", "accuracy": "output"}
    values: Values = {}
    for part in parts(question):
        param = labels.get(part)
        _, value = value_at(run, plan, what=what[question.quantity], step=question.step, param=param)
        if value is None:
            raise ValueError(f"step {question.step} is beyond the run's {run.steps} steps")
        if question.quantity == "accuracy":
            value = np.mean(predictions(value) == predictions(plan.y))
        elif question.quantity == "loss":
            value = np.asarray(value).reshape(())
        values[part] = np.asarray(value, dtype=np.float64)
    return values

