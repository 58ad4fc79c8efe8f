"""Claims the issue-3 scenario files make about their runs, beyond parity and the printed values."""
from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pytest

from harness.render.plots import beyond_log_axis, differences_png, loss_curves_png
from harness.run.adapters import FRAMEWORKS, run_framework
from harness.run.plan import make_plan
from harness.spec.catalogue import catalogue, resolve
from harness.spec.comments import tolerance_reasons
from harness.spec.scenario import DTYPES
from harness.spec.tolerance import compare_elements

# --- minibatch-diverging -------------------------------------------------------------

# The first step whose loss is inf/nan, and the first whose parameters are, per dtype.
DIVERGES_AT = {"float64": (1880, 3794), "float32": (260, 506)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("catalogue_result", ["minibatch-diverging"], indirect=True, scope="session")
def test_every_implementation_diverges_at_the_same_step(catalogue_result, dtype):
    result = catalogue_result
    loss_step, param_step = DIVERGES_AT[dtype]
    for framework in FRAMEWORKS:
        run = result.runs[(framework, dtype)]
        assert run.status == "ok", run.message
        assert run.steps == 4000 and run.stopped_early_at is None, (framework, run.steps, run.stopped_early_at)
        assert run.first_nonfinite_step == loss_step, (framework, run.first_nonfinite_step)
        params = np.column_stack([v.reshape(run.steps, -1) for v in run.params.values()])
        assert np.flatnonzero(~np.isfinite(params).all(axis=1))[0] == param_step, framework
        assert all(np.isnan(v).all() for v in run.final_params.values()), framework


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("catalogue_result", ["minibatch-diverging"], indirect=True, scope="session")
def test_runs_that_diverge_together_agree(catalogue_result, dtype):
    """Both sides nan (or the same inf) count as equal, so the comparison spans all 4000 steps."""
    result = catalogue_result
    for comparison in (c for c in result.comparisons if c.dtype == dtype):
        assert comparison.agree and comparison.steps_a == comparison.steps_b == 4000, comparison.note


def test_the_fixed_order_does_not_diverge():
    """The description's claim: in the data's order, eta = 0.3 converges (the shuffle makes it diverge)."""
    scenario = resolve("minibatch-diverging")
    fixed = dataclasses.replace(scenario, training=dataclasses.replace(scenario.training, shuffle=False))
    run = run_framework("numpy", make_plan(fixed, "float64"))
    assert run.first_nonfinite_step is None and run.stopped_early_at == 127
    np.testing.assert_allclose(run.final_params["layers.0.kernel"].ravel(), [1.5, 1.5], atol=2e-4)


# --- one-hidden-layer: symmetric initialisation ---------------------------------------

WIDTHS = ["one-hidden-layer-width-2", "one-hidden-layer-width-4", "one-hidden-layer-width-8",
          "one-hidden-layer-width-16"]


@pytest.mark.parametrize("catalogue_result", WIDTHS, indirect=True, scope="session")
def test_all_ones_hidden_units_stay_identical(catalogue_result):
    """Every hidden unit's kernel column, bias and outgoing weight equal the first unit's at every
    step: bit for bit in the reference and Keras, in every dtype. torch's vectorised CPU kernels
    may round the columns of a wide layer differently (measured on an AVX-512 CPU: width 16 in
    float64 parts by 2.5e-14 from step 3, width <= 8 stays bitwise), so torch's units must agree
    within the dtype's parity tolerance instead: symmetric up to rounding, never broken."""
    result = catalogue_result
    for (framework, dtype), run in result.runs.items():
        assert run.status == "ok", run.message
        kernel, bias = run.params["layers.0.kernel"], run.params["layers.0.bias"]
        out = run.params["layers.1.kernel"]
        tol = result.scenario.tolerances[dtype]
        for value, first in ((kernel, kernel[:, :, :1]), (bias, bias[:, :1]), (out, out[:, :1, :])):
            first = np.broadcast_to(first, value.shape)
            if framework == "torch":
                assert not compare_elements(value, first, tol).bad.any(), (framework, dtype)
            else:
                assert np.array_equal(value, first), (framework, dtype)


@pytest.mark.parametrize("catalogue_result, final", list(zip(WIDTHS, [81.63, 80.73, 81.24, 84.04])),
                         indirect=["catalogue_result"], scope="session")
def test_width_does_not_help_a_symmetric_network(catalogue_result, final):
    """Final MSE (float64 reference) as stated in the file: 81.63, 80.73, 81.24, 84.04 for
    widths 2, 4, 8, 16."""
    np.testing.assert_allclose(catalogue_result.runs[("numpy", "float64")].losses[-1], final, atol=0.005)


@pytest.mark.parametrize("catalogue_result", ["minibatch-diverging"], indirect=True, scope="session")
def test_the_report_draws_a_run_that_overflows(catalogue_result):
    """Losses and differences near 1e308 are drawn as log10 on a linear axis: matplotlib's log
    axis overflows placing ticks that high (it used to fall back to a [1, 10] axis)."""
    result = catalogue_result
    assert beyond_log_axis([result.runs[("numpy", "float64")].losses])
    assert not beyond_log_axis([result.runs[("numpy", "float32")].losses])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loss_curves_png(result).startswith(b"\x89PNG")
        assert differences_png(result).startswith(b"\x89PNG")


def test_every_tolerance_override_says_why_with_its_measurement():
    """A catalogue file that overrides a default tolerance says why in the comment just above its
    ``[tolerance]`` table, with what was measured: the word and a number in it (issue 19). The
    comment is read by the rule the reports show it by (``harness.spec.comments``)."""
    overrides = 0
    for path in catalogue():
        for comment in tolerance_reasons(path.read_text(encoding="utf-8")):
            overrides += 1
            assert "measured" in comment.lower() and re.search(r"\d\.?\d*e-\d+", comment), \
                f"{path.name}: a [tolerance] table has no comment saying what was measured"
    assert overrides, "the catalogue overrides no tolerance: this test checks nothing"
