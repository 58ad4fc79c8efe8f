"""The seed-7 campaign's most frequent finding (``keras@jax / gradient kernel / kernel / float32 /
constant factor``, 15 of 158 examples), explained: JAX differentiates ``jnp.clip`` (which
``keras.ops.clip`` is on JAX) at its bound as half the gradient, where TensorFlow, torch's clamp and
the reference pass all of it. A pair parted by that differs, explained, by ``guard's derivative split
at its bound`` (``harness.judge.causes.ties``), confirmed by the reference's run made again with the
guards' derivative split at a tie (NumPy, none of JAX's code); a framework that does not declare it,
or a reference that computes it, is still reported.

keras and torch run in this process where a test plants a defect (``inline()``); keras@jax always
runs in its worker.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.fuzz.oracle import EXPLAINED, FINDING, judge_example
from harness.fuzz.space import Example
from harness.judge.causes.evidence import Finding
from harness.judge.causes.ties import NAME, TIES, Split
from harness.judge.compare import DISAGREE
from harness.judge.compare import EXPLAINED as EXPLAINED_STATE
from harness.pipeline import diagnose, run_scenario
from harness.run.adapters import adapter, torch_eager
from harness.run.adapters.numpy_reference import NumpyReference
from harness.run.adapters.workers import inline
from harness.run.plan import make_plan
from harness.spec.fields import read_toml
from harness.spec.scenario import load_scenarios, parse_scenario
from reference.losses import LOSSES
from tests.on_first_use import jax, jnp, torch

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
ON_BOUND = SCENARIOS / "bce-sigmoid-on-keras-clip-bound.toml"
FRAMEWORKS = ("numpy", "keras", "torch", "keras@jax")


def _jax_gradient(loss: str, clip: str, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """dL/dp of the adapters' guarded loss (``keras_tf.build_loss``'s expression) by JAX's own autograd."""
    eps = 1e-7

    def value(q: Any) -> Any:
        if loss == "binary_crossentropy":
            c = jnp.clip(q, eps, 1.0 - eps)
            return -jnp.mean(y * jnp.log(c) + (1.0 - y) * jnp.log(1.0 - c))
        if clip == "keras":
            q = q / jnp.sum(q, axis=-1, keepdims=True)
            return -jnp.mean(jnp.sum(y * jnp.log(jnp.clip(q, eps, 1.0 - eps)), axis=-1))
        return -jnp.mean(jnp.sum(y * jnp.maximum(jnp.log(q), -100.0), axis=-1))
    with jax.enable_x64(p.dtype == np.float64):
        return np.asarray(jax.grad(value)(jnp.asarray(p)))


@pytest.mark.xdist_group(name="jax-in-process")  # JAX in the pytest process: imported by one worker
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_split_rule_is_jax_autograd_and_the_reference_elsewhere(dtype: str) -> None:
    """``Split``'s gradients against ``jax.grad`` of the same guarded losses: equal (within a few ulps) on
    and off the bounds; off the bounds bit for bit the reference's; on a bound half the reference's."""
    t = np.dtype(dtype).type
    eps = t(1e-7)
    p = np.array([[eps], [1 - eps], [t(0.3)], [t(1e-9)]], dtype=dtype)
    y = np.array([[1.0], [0.0], [1.0], [0.0]], dtype=dtype)
    before = TIES[0]
    split = Split.losses["binary_crossentropy"].gradient(y, p, clip="keras")
    assert TIES[0] - before == 2
    ours = LOSSES["binary_crossentropy"].gradient(y, p, clip="keras")
    assert np.array_equal(split[2:], ours[2:]) and np.array_equal(split[:2], ours[:2] / 2)
    np.testing.assert_allclose(split, _jax_gradient("binary_crossentropy", "keras", y, p), rtol=8 * np.finfo(dtype).eps)
    # categorical, "keras": q = p / sum(p) exactly on the lower bound in row 0
    q = np.array([[eps, 1 - eps, t(0)], [t(0.2), t(0.3), t(0.5)]], dtype=dtype)
    yc = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
    assert float(q[0].sum()) == 1.0
    cat = Split.losses["categorical_crossentropy"].gradient(yc, q, clip="keras")
    np.testing.assert_allclose(cat, _jax_gradient("categorical_crossentropy", "keras", yc, q),
                               rtol=8 * np.finfo(dtype).eps, atol=0)
    assert not np.allclose(cat[0], LOSSES["categorical_crossentropy"].gradient(yc, q, clip="keras")[0])


def test_a_run_with_no_probability_on_a_bound_is_the_references_bit_for_bit() -> None:
    """Off the bounds the measurement's run is the reference's, bit for bit (so it accounts for nothing)."""
    raw = read_toml(ON_BOUND, what="scenario file")
    on = make_plan(parse_scenario(raw, path=ON_BOUND), "float32")
    raw["model"]["layers"][0]["bias"] = [3.0]
    off = make_plan(parse_scenario(raw, path=ON_BOUND), "float32")
    before = TIES[0]
    made, own = Split().run(off), NumpyReference().run(off)
    assert TIES[0] == before
    assert all(np.array_equal(made.params[k], own.params[k]) for k in own.params)
    made, own = Split().run(on), NumpyReference().run(on)
    assert TIES[0] > before
    start = 16.11809565095832
    assert made.params["layers.0.bias"][0, 0] == pytest.approx((own.params["layers.0.bias"][0, 0] + start) / 2)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["numpy", "keras", "torch", "keras@jax", "keras@torch"])
def test_each_implementation_declares_what_it_computes(framework: str) -> None:
    """``Adapter.ties`` against the implementation itself: at the scenario's initial weights (a float32
    probability exactly 1 - 1e-7) its bias gradient is half the reference's exactly in the implementations
    that declare the split, and the reference's elsewhere."""
    [scenario] = load_scenarios(ON_BOUND)
    params = {"layers.0.kernel": np.zeros((1, 1), dtype="float32"),
              "layers.0.bias": np.array([16.11809565095832], dtype="float32")}
    X, y = np.array([[0.01]], dtype="float32"), np.array([[0.0]], dtype="float32")
    _, reference = adapter("numpy").gradients(scenario, params, X, y)
    _, grads = adapter(framework).gradients(scenario, params, X, y)
    declared = adapter(framework).ties is not None
    ratio = float(np.asarray(grads["layers.0.bias"]).ravel()[0] / reference["layers.0.bias"].ravel()[0])
    assert ratio == pytest.approx(0.5 if declared else 1.0, rel=1e-6), (framework, ratio)
    assert declared == (framework == "keras@jax")


@pytest.mark.usefixtures("shared_runs")  # the oracle is served the runs the test made
@pytest.mark.slow
def test_a_pair_parted_by_the_split_differs_explained() -> None:
    """keras@jax's gradients half the others' at step 0 (a float32 probability on the clip's bound): every
    pair with keras@jax differs, explained, by the split, confirmed by the reference's run made with it and
    pointing at keras@jax; the others agree; the fuzzer counts the file as differ, explained."""
    [scenario] = load_scenarios(ON_BOUND)
    result = run_scenario(scenario, frameworks=FRAMEWORKS, dtypes=("float32",))
    assert result.ok and result.state == EXPLAINED_STATE
    assert result.properties[("keras@jax", "float32")].cause.name == NAME
    diagnoses = {(d.comparison.a, d.comparison.b): d for d in diagnose(result)
                 if d.comparison.state == EXPLAINED_STATE}
    assert {pair for pair in diagnoses if "keras@jax" in pair} >= {("numpy", "keras@jax"), ("keras", "keras@jax"),
                                                                   ("torch", "keras@jax")}, sorted(diagnoses)
    for (a, b), d in diagnoses.items():
        if "keras@jax" in (a, b):
            assert d.step == 0 and d.cause_name == NAME
            assert isinstance(d.confirmed_by, Finding) and d.confirmed_by.side.startswith("keras@jax")
    outcome = judge_example(Example(read_toml(ON_BOUND, what="scenario file"), ()), frameworks=FRAMEWORKS,
                            dtypes=("float32",))
    assert (outcome.kind, outcome.reason) == (EXPLAINED, NAME)


class _SplittingTorch:
    """The torch module with ``clamp`` written as ``maximum`` then ``minimum``, which split the gradient at a tie."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def clamp(x: torch.Tensor, min: float | None = None, max: float | None = None) -> torch.Tensor:  # noqa: A002
        if min is not None:
            x = torch.maximum(x, torch.full_like(x, min))
        if max is not None:
            x = torch.minimum(x, torch.full_like(x, max))
        return x


def _not_explained_by_the_split(suspect: str, *, blamed: set[str]) -> None:
    """``suspect``'s pairs disagree and none is named by the split; its run is not accounted for by it; the
    fuzzer reports a finding whose suspects are ``blamed``, none with the split as its cause."""
    raw = read_toml(ON_BOUND, what="scenario file")
    # the tolerance set by hand, without the measured rounding term: on the clip's bound one ulp of p decides
    # between the whole gradient and none in the reference, so R covers anything between (an undeclared
    # framework's split included); keras@jax is judged without R anyway (its float32 run "narrows" Python
    # floats: ``compare_runs.compare_pair``), and here so is every pair
    raw["tolerance"] = {"float32": {"rtol": 1e-5, "atol": 1e-7}}
    result = run_scenario(parse_scenario(raw, path=ON_BOUND), frameworks=FRAMEWORKS, dtypes=("float32",))
    assert (suspect, "float32") not in result.properties, result.properties
    with_suspect = [d for d in diagnose(result) if d.comparison.state == DISAGREE
                    and suspect in (d.comparison.a, d.comparison.b)]
    assert with_suspect and all(d.cause_name != NAME for d in with_suspect), [d.cause_name for d in with_suspect]
    outcome = judge_example(Example(raw, ()), frameworks=FRAMEWORKS, dtypes=("float32",))
    assert outcome.kind == FINDING and all(fp.cause != NAME for fp in outcome.fingerprints), outcome
    assert {fp.suspect for fp in outcome.fingerprints} == blamed, outcome


@pytest.mark.slow
def test_a_framework_that_does_not_declare_the_split_is_not_accounted_for_by_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """torch planted to clip with maximum and minimum (its autograd then splits at a tie, as JAX's does)
    computes what keras@jax computes; torch declares no such rule, so its pairs are reported, not explained."""
    original = torch_eager.build_loss
    monkeypatch.setattr(torch_eager, "build_loss", lambda t, loss, clip: original(_SplittingTorch(), loss, clip))
    with inline():
        # numpy and keras against torch and keras@jax: two against two, no majority to blame
        _not_explained_by_the_split("torch", blamed={"no-majority"})


@pytest.mark.slow
def test_a_reference_that_splits_is_not_explained_by_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference planted to split at a tie (its losses ``Split``'s): it agrees with keras@jax, keras
    and torch differ from it and are reported; the split names nothing (the reference's own run is the
    measurement's, so it does not part them)."""
    monkeypatch.setattr(NumpyReference, "losses", Split.losses)
    with inline():
        # numpy and keras@jax against keras and torch: two against two, no majority to blame
        _not_explained_by_the_split("keras", blamed={"no-majority"})


@pytest.mark.slow
def test_a_keras_at_jax_side_is_not_explained_when_the_gradient_is_not_on_a_bound() -> None:
    """Off the bound (bias 3: p 0.95) keras@jax agrees with the others: nothing is a property."""
    raw = read_toml(ON_BOUND, what="scenario file")
    raw["model"]["layers"][0]["bias"] = [3.0]
    outcome = judge_example(Example(raw, ()), frameworks=FRAMEWORKS, dtypes=("float32",))
    assert outcome.kind == "ok", outcome


@pytest.mark.parametrize("clip", ["keras", "torch"])
def test_off_the_bounds_the_categorical_split_is_the_references_bit_for_bit(clip: str) -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 1.0, size=(4, 3))
    p /= p.sum(axis=1, keepdims=True)
    y = np.eye(3)[[0, 2, 1, 1]]
    for dtype in ("float64", "float32"):
        q, t = p.astype(dtype), y.astype(dtype)
        assert np.array_equal(Split.losses["categorical_crossentropy"].gradient(t, q, clip=clip),
                              LOSSES["categorical_crossentropy"].gradient(t, q, clip=clip))
