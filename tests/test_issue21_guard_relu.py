"""The seed-12 findings (examples 232 and 20): torch's nan at a clamped log(0) unexplained, though it is
``autograd at a clamped log(0)`` (``harness.judge.causes.guard_at_zero``). The measurement
backpropagated the nan through each ReLU by the reference's ``relu_grad``, a product with the 0/1
mask (TensorFlow's ``ReluGrad``: nan x 0 = nan); torch's ``threshold_backward`` selects (0 for a
unit that is off, nan or not), so torch's run keeps finite the weights of the units its ReLUs
switched off, and the measurement, and the rule that a property's run be non-finite from its step
on, refused it. Each ReLU's backward is now the side's framework's form (``RELU_FORMS``), and a run
is accounted for with elements that selection kept finite (``harness.judge.properties.masked_from``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.fuzz.oracle import EXPLAINED, FINDING, judge_example
from harness.fuzz.space import Example
from harness.judge.causes.evidence import Finding
from harness.judge.causes.guard_at_zero import NAME, SELECT, TIMES_MASK, relu_backward, relu_form_of
from harness.judge.compare import DISAGREE
from harness.judge.compare import EXPLAINED as EXPLAINED_STATE
from harness.judge.properties import masked_from
from harness.pipeline import diagnose, run_scenario
from harness.run.adapters import torch_eager
from harness.run.adapters.keras_tf import import_keras
from harness.run.adapters.workers import inline
from harness.run.trajectory import Trajectory
from harness.spec.fields import read_toml
from harness.spec.scenario import load_scenarios, parse_scenario
from harness.spec.tolerance import Tolerance
from tests.on_first_use import torch
from tests.test_fuzz_guard_at_zero import _nan_loss

FILE = Path(__file__).resolve().parent / "scenarios" / "cce-torch-guard-relu-off.toml"
FRAMEWORKS = ("numpy", "keras", "torch")
NAN = float("nan")
Z = np.array([[2.0, -1.0, 0.0, 3.0]])  # on, off, at the kink (off), on
G = np.array([[NAN, NAN, NAN, 5.0]])


# --- the two forms of a ReLU's backward ------------------------------------------------

def test_the_two_forms_differ_only_where_a_nan_gradient_meets_a_unit_that_is_off() -> None:
    mask, select = relu_backward(Z, G, TIMES_MASK), relu_backward(Z, G, SELECT)
    np.testing.assert_array_equal(mask, [[NAN, NAN, NAN, 5.0]])
    np.testing.assert_array_equal(select, [[NAN, 0.0, 0.0, 5.0]])
    finite = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(relu_backward(Z, finite, TIMES_MASK), relu_backward(Z, finite, SELECT))
    assert [relu_form_of(label) for label in ("numpy", "numpy[torch]", "keras", "torch", "keras@torch",
                                              "keras@jax")] == [TIMES_MASK] * 3 + [SELECT] * 3


@pytest.mark.slow
def test_the_forms_are_what_torch_tensorflow_and_jax_compute() -> None:
    """Each framework's ReLU backward against its declared form, element by element (nan where it
    gives nan, else equal): torch's (torch, and Keras on torch, whose relu is torch's), TensorFlow's
    under Keras' relu, JAX's (Keras on JAX)."""
    for relu in (torch.relu, torch.nn.ReLU(), torch.nn.functional.relu):
        z = torch.tensor(Z, requires_grad=True)
        relu(z).backward(torch.tensor(G))
        np.testing.assert_array_equal(z.grad.numpy(), relu_backward(Z, G, SELECT))
    tf, keras = import_keras()  # as the adapter starts it (threads are settable only before TF's first op)
    v = tf.Variable(Z)
    with tf.GradientTape() as tape:
        a = keras.activations.relu(v)
    np.testing.assert_array_equal(tape.gradient(a, v, output_gradients=tf.constant(G)).numpy(),
                                  relu_backward(Z, G, TIMES_MASK))
    jax = pytest.importorskip("jax")
    z32, g32 = Z.astype(np.float32), G.astype(np.float32)  # JAX's default dtype: no global x64 switch
    _, vjp = jax.vjp(jax.nn.relu, z32)
    np.testing.assert_array_equal(np.asarray(vjp(g32)[0]), relu_backward(z32, g32, SELECT))


# --- what a property may account for: elements kept finite by the selection ------------

TOL = Tolerance(rtol=1e-12, atol=1e-14)


def _runs(*, kept: list[float], grad: list[float], losses: list[float],
          theirs: float = -1.0) -> tuple[Trajectory, Trajectory]:
    """A run whose kernel's first element is nan from step 1 and whose second is ``kept``, with
    ``grad`` its recorded gradient; the reference's second element is ``theirs`` at every step."""
    n = len(kept)
    first = [1.0] + [NAN] * (n - 1)
    params = np.array([[[a, b]] for a, b in zip(first, kept)])
    grads = np.array([[[NAN if i else 0.5, g]] for i, g in enumerate(grad)])
    run = Trajectory("torch", "float64", losses=np.array(losses), params={"k": params}, grads={"k": grads},
                     initial_params={"k": np.array([[1.5, -1.0]])})
    reference = Trajectory("numpy", "float64", losses=np.ones(n),
                           params={"k": np.array([[[0.5, theirs]]] * n)}, grads={"k": np.zeros((n, 1, 2))})
    return run, reference


def test_a_run_kept_finite_by_the_selection_alone_is_out_of_the_finite_numbers() -> None:
    run, reference = _runs(kept=[-1.0, -1.0, -1.0], grad=[0.0, 0.0, 0.0], losses=[0.3, 0.2, NAN])
    assert masked_from(run, reference, 1, TOL)


@pytest.mark.parametrize("case, kwargs", [
    ("a kept element takes a gradient", dict(kept=[-1.0, -1.0, -1.0], grad=[0.0, 0.0, 1e-300],
                                              losses=[0.3, 0.2, NAN])),
    ("a kept element moves after the step", dict(kept=[-1.0, -1.0, -0.5], grad=[0.0, 0.0, 0.0],
                                                  losses=[0.3, 0.2, NAN])),
    ("an element comes back to finite numbers", dict(kept=[-1.0, NAN, -1.0], grad=[0.0, NAN, 0.0],
                                                     losses=[0.3, 0.2, NAN])),
    ("the loss is finite after the step", dict(kept=[-1.0, -1.0, -1.0], grad=[0.0, 0.0, 0.0],
                                                losses=[0.3, 0.2, 0.1])),
    ("a kept element differs from the reference's at the step", dict(kept=[-1.0, -1.0, -1.0],
                                                                     grad=[0.0, 0.0, 0.0],
                                                                     losses=[0.3, 0.2, NAN], theirs=-0.9)),
])
def test_anything_else_finite_after_the_step_is_not(case: str, kwargs: dict) -> None:  # type: ignore[type-arg]
    run, reference = _runs(**kwargs)
    assert not masked_from(run, reference, 1, TOL), case


# --- the finding's minimal file, and faults planted in torch ---------------------------

@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made
@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_minimal_file_differs_explained_on_every_pair(dtype: str) -> None:
    """torch's and keras' nan at step 0 are each named, confirmed by the measurement in their own
    ReLU form; torch's run keeps the switched-off unit's weight at -1 to the end; the fuzzer counts
    the file as differ, explained, not a finding."""
    [scenario] = load_scenarios(FILE)
    result = run_scenario(scenario, frameworks=FRAMEWORKS, dtypes=(dtype,))
    assert result.ok and result.state == EXPLAINED_STATE
    assert {label for (label, _), p in result.properties.items() if p.cause.name == NAME and p.step == 0} \
        == {"keras", "torch"}
    torch_run = result.runs[("torch", dtype)]
    assert (torch_run.params["layers.0.kernel"][:, 0, 1] == -1.0).all()
    assert np.isnan(result.runs[("keras", dtype)].params["layers.0.kernel"]).all()
    diagnoses = {(d.comparison.a, d.comparison.b): d for d in diagnose(result)}
    d = diagnoses[("numpy", "torch")]
    assert d.comparison.state == EXPLAINED_STATE and d.cause_name == NAME
    assert isinstance(d.confirmed_by, Finding) and d.confirmed_by.side == "torch"
    assert SELECT in d.confirmed_by.description and "exactly 0 at [0, 1]" in d.confirmed_by.description
    assert TIMES_MASK in diagnoses[("numpy", "keras")].confirmed_by.description  # type: ignore[union-attr]
    outcome = judge_example(Example(read_toml(FILE, what="scenario file"), ()), frameworks=FRAMEWORKS,
                            dtypes=(dtype,))
    assert (outcome.kind, outcome.reason) == (EXPLAINED, NAME)


def _relu_as_a_product(original):  # noqa: ANN001, ANN202 - torch's activations, planted
    def build(torch_module, name: str, axis: int):  # noqa: ANN202
        if name != "relu":
            return original(torch_module, name, axis)
        # z x (z > 0): the same values, and TensorFlow's backward (nan x 0 = nan), not torch's
        return type("ProductRelu", (torch_module.nn.Module,), {"forward": lambda self, z: z * (z > 0).to(z.dtype)})()
    return build


def _moves_kept_weights(original):  # noqa: ANN001, ANN202 - torch's optimizer step, planted
    def stepper(optimizer):  # noqa: ANN001, ANN202
        step = original(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]

        def planted():  # noqa: ANN202
            was_nan = [bool(torch.isnan(p).any()) for p in params]
            step()
            with torch.no_grad():  # a parameter already nan before the step: its finite elements halved
                for p, nan in zip(params, was_nan):
                    if nan:
                        p.copy_(torch.where(torch.isfinite(p), p * 0.5, p))
        return planted
    return stepper


PLANTS = {"nan-from-a-sqrt-no-zero-probability": ("build_loss", _nan_loss, 8.0),
          "relu-backward-as-a-product": ("_activation", _relu_as_a_product, 800.0),
          "kept-weight-moved-after-the-step": ("_stepper", _moves_kept_weights, 800.0)}
AFTER_THE_STEP = {"kept-weight-moved-after-the-step"}  # step 0 is the property's; the fault comes after


@pytest.mark.slow
@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_fault_planted_in_torch_is_still_reported(plant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch planted: a nan by another route (a sqrt at 0 times 0, where no probability is 0: logits
    8 apart) that the ReLU's selection spreads as autograd's rule would; torch's ReLU backward made
    TensorFlow's (a product with the mask: torch's declared form is the selection); a weight the
    selection kept finite moved after the step. None is accounted for: numpy-torch disagrees (the
    first two name no cause for it; the third's first divergence, step 0, is the property's, and
    its diagnosis says so, but what follows is not), and the fuzzer reports a finding."""
    attribute, wrap, logit = PLANTS[plant]
    raw = read_toml(FILE, what="scenario file")
    raw["model"]["layers"][1]["kernel"][0][0] = logit
    with inline():
        monkeypatch.setattr(torch_eager, attribute, wrap(getattr(torch_eager, attribute)))
        result = run_scenario(parse_scenario(raw, path=FILE), frameworks=FRAMEWORKS, dtypes=("float64",))
        diagnoses = [d for d in diagnose(result) if d.comparison.state == DISAGREE]
        outcome = judge_example(Example(raw, ()), frameworks=FRAMEWORKS, dtypes=("float64",))
    assert ("torch", "float64") not in result.properties
    with_torch = [d for d in diagnoses if "torch" in (d.comparison.a, d.comparison.b)]
    assert ("numpy", "torch") in {(d.comparison.a, d.comparison.b) for d in with_torch}  # keras-torch may agree
    assert outcome.kind == FINDING, outcome
    # torch planted with TensorFlow's ReLU backward gives keras' nan: no majority to suspect one
    assert {fp.suspect for fp in outcome.fingerprints} & {"torch", "no-majority"}, outcome
    if plant not in AFTER_THE_STEP:
        assert all(d.cause_name != NAME for d in with_torch), [d.cause_name for d in diagnoses]
        assert all(fp.cause != NAME for fp in outcome.fingerprints), outcome
