"""The pytest plugin (``harness.pytest_plugin``) and ``harness.testing.assert_parity``.

Each test builds a folder of tiny scenarios in ``pytester.path`` and runs pytest on it: in a
subprocess where Keras or torch really runs (``slow``), in process where an adapter is
monkeypatched (the plugin must see the patch). The plugin is registered by the installed
entry point (``nn_parity`` in ``pytest11``), so the inner runs need no ``-p``.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.adapters import ADAPTERS
from harness.testing import assert_parity

SCENARIOS = Path(__file__).parent / "scenarios"

# 3-4-1 tanh network, 64 teacher points, batches of 16, one epoch: 4 steps. numpy and torch sum
# the batch in different orders, so in float64 they differ in the last bits from step 0.
SMALL_MLP = (SCENARIOS / "small-mlp.toml").read_text().replace("epochs = 5", "epochs = 1")

PASSING = SMALL_MLP.replace('name = "small-mlp"', 'name = "passing"')
# rtol = atol = ulps = 0 in float64: any difference in the last bits fails (deliberately broken)
BROKEN = SMALL_MLP.replace('name = "small-mlp"', 'name = "broken"') + \
    '\n[tolerance]\nfloat64 = { rtol = 0.0, atol = 0.0, ulps = 0 }  # nothing may differ: meant to fail\n'
ADAM = SMALL_MLP.replace('name = "small-mlp"', 'name = "adam"').replace(
    'optimizer = { name = "sgd", learning_rate = 0.05 }', 'optimizer = { name = "adam", learning_rate = 0.01 }')
VARIANTS = SMALL_MLP.replace('name = "small-mlp"', 'name = "rates"') + \
    '\n[[variants]]\nname = "slow"\nset = { "training.optimizer.learning_rate" = 0.01 }\n' \
    '\n[[variants]]\nname = "fast"\nset = { "training.optimizer.learning_rate" = 0.2 }\n'

NUMPY_TORCH_64 = ("--parity-frameworks", "numpy,torch", "--parity-dtypes", "float64")


def _write(pytester: pytest.Pytester, **files: str) -> None:
    folder = pytester.path / "scenarios"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.toml").write_text(text)


def _lines(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines)


def test_without_parity_nothing_is_collected(pytester: pytest.Pytester) -> None:
    _write(pytester, passing=PASSING)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    assert result.ret == 0
    assert "test_plain.py::test_plain" in _lines(result)
    assert ".toml" not in _lines(result)


def test_collects_one_item_per_pair_and_dtype_sorted(pytester: pytest.Pytester) -> None:
    _write(pytester, passing=PASSING, broken=BROKEN, rates=VARIANTS)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q", ".", "--parity", "scenarios")
    assert result.ret == 0
    ids = [line for line in result.outlines if "::" in line]
    pairs = ["numpy-keras", "numpy-torch", "keras-torch"]
    expected = [f"scenarios/{file}.toml::{name}[{pair}-{dtype}]"
                for file, names in (("broken", ["broken"]), ("passing", ["passing"]),
                                    ("rates", ["rates-slow", "rates-fast"]))
                for name in names for dtype in ("float64", "float32") for pair in pairs]
    assert ids == [*expected, "test_plain.py::test_plain"]  # sorted: scenarios/ before test_plain.py


def test_ini_option_and_narrowed_frameworks(pytester: pytest.Pytester) -> None:
    _write(pytester, passing=PASSING)
    pytester.makeini("[pytest]\nparity_paths = scenarios\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q", *NUMPY_TORCH_64)
    ids = [line for line in result.outlines if "::" in line]
    assert ids == ["scenarios/passing.toml::passing[numpy-torch-float64]"]


def test_adam_gives_the_convention_pairs(pytester: pytest.Pytester) -> None:
    _write(pytester, adam=ADAM)
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q", "--parity", "scenarios",
                                "--parity-dtypes", "float64")
    assert [line.split("::")[1] for line in result.outlines if "::" in line] == [
        "adam[numpy[keras]-numpy[torch]-float64]", "adam[numpy[keras]-keras-float64]",
        "adam[numpy[torch]-torch-float64]", "adam[keras-torch-float64]"]


def test_bad_scenario_is_a_one_line_collection_error(pytester: pytest.Pytester) -> None:
    _write(pytester, passing=PASSING, bad=PASSING.replace('name = "passing"', 'name = "Not A Name"'))
    result = pytester.runpytest("-p", "no:cacheprovider", "--parity", "scenarios", *NUMPY_TORCH_64)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    errors = _lines(result)
    assert re.search(r"scenarios/bad\.toml: name: expected lowercase letters.*; received 'Not A Name'", errors)
    assert "Traceback" not in errors and "BadInput" not in errors


def test_a_missing_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--parity", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "nowhere: expected a folder or a scenario .toml file" in "\n".join(result.errlines)


def test_missing_framework_skips_with_the_reason(pytester: pytest.Pytester,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ADAPTERS["torch"], "available", lambda: "torch is not installed (patched)")
    _write(pytester, passing=PASSING)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "--parity", "scenarios", *NUMPY_TORCH_64)
    result.assert_outcomes(skipped=1)
    assert "passing: torch (float64) skipped: torch is not installed (patched)" in _lines(result)


def test_crashed_run_fails_its_items(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                     frameworks_in_process: None) -> None:
    def crash(plan: object) -> None:
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(ADAPTERS["torch"], "run", crash)
    _write(pytester, passing=PASSING)
    result = pytester.runpytest("-p", "no:cacheprovider", "--parity", "scenarios", *NUMPY_TORCH_64)
    result.assert_outcomes(failed=1)
    assert "passing: torch (float64) crashed:" in _lines(result)
    assert "out of cheese" in _lines(result)


@pytest.mark.slow
def test_pass_and_fail_with_the_harness_failure_text(tmp_path: Path) -> None:
    """A real ``pytest --parity`` process (not pytester: the in-process assert_parity below imports
    torch's lazy submodules, which pytester's sys.modules snapshot would unload at teardown and
    break every later torch run), then ``assert_parity`` with the same text."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "passing.toml").write_text(PASSING)
    (folder / "broken.toml").write_text(BROKEN)
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", ".", "--parity", "scenarios",
                           *NUMPY_TORCH_64], cwd=tmp_path, capture_output=True, text=True)
    out = done.stdout
    assert done.returncode == 1 and re.search(r"^=+ 1 failed, 2 passed in ", out, re.MULTILINE), out
    assert "FAILED scenarios/broken.toml::broken[numpy-torch-float64]" in out
    failure = re.search(r"^broken: numpy vs torch \(float64\) disagree at step (\d+), (layers\.\d\.\w+|loss)[^:]*: "
                        r"numpy=\S+ torch=\S+ \|diff\|=\S+ > allowed 0\.000e\+00 \(rtol=0, atol=0\); "
                        r"last step that agreed: \w+\.$", out, re.MULTILINE)
    assert failure is not None, out
    assert re.search(r"^diagnosis: within step \d+, .*; cause: .+$", out, re.MULTILINE)
    assert "Traceback" not in out

    # assert_parity raises with the same text; rtol / atol override the scenario's tolerance
    with pytest.raises(AssertionError) as raised:
        assert_parity(folder / "broken.toml", frameworks=("numpy", "torch"), dtypes=("float64",))
    assert str(raised.value).splitlines()[0] == failure.group(0)
    assert str(raised.value).splitlines()[1] in out.splitlines()
    assert_parity(folder / "broken.toml", frameworks=("numpy", "torch"), dtypes=("float64",), rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_explained_convention_difference_passes_and_says_so(pytester: pytest.Pytester) -> None:
    _write(pytester, adam=ADAM)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "--parity", "scenarios",
                                           "--parity-dtypes", "float64")
    result.assert_outcomes(passed=4)
    out = _lines(result)
    explained = [line for line in result.outlines if line.endswith("adam.toml::adam[keras-torch-float64]")]
    assert len(explained) == 1 and explained[0].startswith("PASSED (") and "Adam epsilon placement" in explained[0]
    assert "PASSED scenarios/adam.toml::adam[numpy[keras]-keras-float64]" in out
    assert re.search(r"^adam: keras-torch \(float64\): .*Adam epsilon placement.*each side agrees with the "
                     r"reference run in its own optimizer convention, or", out, re.MULTILINE)


@pytest.mark.slow
def test_keras_on_jax_items_pass_as_explained_by_its_dtype_rule(pytester: pytest.Pytester) -> None:
    """`--parity-frameworks` takes Keras' other backends (item ids `numpy-keras@jax`); their float64
    difference, Keras' 64-to-32-bit rule confirmed by the control run, passes and says so."""
    _write(pytester, passing=PASSING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "--parity", "scenarios",
                                           "--parity-frameworks", "numpy,keras@jax")
    result.assert_outcomes(passed=2)  # the pair in each dtype
    out = _lines(result)
    assert "PASSED scenarios/passing.toml::passing[numpy-keras@jax-float32]" in out
    explained = [line for line in result.outlines if line.endswith("passing.toml::passing[numpy-keras@jax-float64]")]
    assert len(explained) == 1 and explained[0].startswith("PASSED (differ, explained: keras@jax: Keras' rule"), out
    assert re.search(r"^passing: numpy-keras@jax \(float64\): differ, explained: .*with it off, keras@jax\[64-bit\] "
                     r"agrees with numpy\).*its control run with that rule off may do so instead; and each "
                     r"convention's reference run follows that convention's update rule, computed independently "
                     r"in exact arithmetic$", out, re.MULTILINE), out


def test_an_unknown_framework_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _write(pytester, passing=PASSING)
    result = pytester.runpytest("-p", "no:cacheprovider", "--parity", "scenarios", "--parity-frameworks", "numpy,jax")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--parity-frameworks: expected all or a comma-separated subset of" in "\n".join(result.errlines)
