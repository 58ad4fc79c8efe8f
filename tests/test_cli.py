"""The command line: list, run (exit codes, JSON), skipped frameworks, report, bench output format."""
from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import harness.commands.cli
from harness.commands.cli import main
from harness.pipeline import run_scenario
from harness.run.adapters import ADAPTERS
from harness.spec.catalogue import resolve


@pytest.fixture(scope="module")
def in_a_fresh_process() -> Callable[[tuple[str, ...]], tuple[int, str, set[str]]]:
    """``run(argv)``: ``main(argv)`` in a new Python process started in the repository, as
    (exit code, what it printed before, the modules it imported); each argv runs once per module."""
    @functools.cache
    def run(argv: tuple[str, ...]) -> tuple[int, str, set[str]]:
        code = ("import json, sys\nfrom harness.commands.cli import main\n"
                f"code = main({list(argv)!r})\n"
                "print(json.dumps([code, sorted(sys.modules)]))\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stdout + done.stderr
        *printed, last = done.stdout.splitlines()
        exit_code, modules = json.loads(last)
        return exit_code, "\n".join(printed), set(modules)
    return run


def test_list_imports_no_framework(in_a_fresh_process):
    code, out, modules = in_a_fresh_process(("list",))
    assert code == 0 and not {"tensorflow", "keras", "torch"} & modules, sorted(modules)
    for name in ("sigmoid-exponential", "softmax-classifier", "minibatch-regression"):
        assert name in out
    assert "003_8a82d580fe4d8025.txt" in out


@pytest.mark.slow
def test_run_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert main(["run", "softmax-classifier", "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert data["scenario"] == "softmax-classifier"
    assert {(r["framework"], r["dtype"]) for r in data["runs"]} == {
        (f, d) for f in ("numpy", "keras", "torch") for d in ("float64", "float32")}
    for run in data["runs"]:
        assert run["steps"] == 200 and len(run["losses"]) == 200
        assert set(run["final_params"]) == {"layers.0.kernel", "layers.0.bias"}
        assert len(run["final_params"]["layers.0.kernel"]) == 2
    assert len(data["comparisons"]) == 6
    for c in data["comparisons"]:
        assert {"a", "b", "dtype", "max_abs", "max_rel", "first_divergent_step", "rtol", "atol", "agree"} <= set(c)
        assert c["agree"] is True and c["first_divergent_step"] is None
    printed = capsys.readouterr().out
    assert "| numpy-keras | float64" in printed and "agree" in printed


@pytest.mark.slow
def test_run_exits_1_when_a_pair_disagrees(tmp_path, capsys):
    """A scenario whose float64 tolerance is set below what the arithmetic allows must be reported."""
    src = resolve("sigmoid-exponential").path.read_text()
    path = tmp_path / "too-tight.toml"
    assert "[tolerance]" not in src  # the defaults: the table below is the only override
    path.write_text(src.replace("epochs = 5000", "epochs = 50")
                    + "\n[tolerance]\nfloat64 = { rtol = 0.0, atol = 0.0, ulps = 0 }\n")
    code = main(["run", str(path), "--frameworks", "numpy,torch", "--dtype", "float64", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "disagree" in out and "DISAGREE" not in out and "rtol=0, atol=0" in out
    assert "Verdict: disagree (pairs: 0 agree, 0 differ, explained, 1 disagree)" in out
    assert "### numpy-torch (float64, disagrees): no known cause confirmed" in out
    assert "- Suspect: no majority in float64: only two implementations (numpy and torch)" in out


@pytest.mark.slow
def test_missing_framework_is_skipped_and_the_others_run(monkeypatch):
    monkeypatch.setattr(ADAPTERS["torch"], "available", lambda: "torch is not installed")
    result = run_scenario(resolve("softmax-classifier"), frameworks=("numpy", "keras", "torch"),
                          dtypes=("float64",))
    torch_run = result.runs[("torch", "float64")]
    assert torch_run.status == "skipped" and "not installed" in torch_run.message
    assert [(c.a, c.b) for c in result.comparisons] == [("numpy", "keras")]
    assert result.agree


@pytest.mark.slow
def test_crash_is_recorded_not_raised(monkeypatch, frameworks_in_process):
    def boom(plan):
        raise RuntimeError("first line\nthe last line of the error")
    monkeypatch.setattr(ADAPTERS["torch"], "run", boom)
    result = run_scenario(resolve("softmax-classifier"), dtypes=("float64",))
    run = result.runs[("torch", "float64")]
    assert run.status == "crashed" and run.message == "RuntimeError: the last line of the error"
    assert not result.agree
    assert len(result.comparisons) == 1


@pytest.mark.slow
def test_report_writes_scenario_and_index(tmp_path):
    assert main(["report", "--scenario", "softmax-classifier", "--out", str(tmp_path), "--quiet"]) == 0
    report = (tmp_path / "softmax-classifier.md").read_text()
    assert "Verdict: agree" in report and "rtol 1e-12" in report and "## Final parameters (float64)" in report
    index = (tmp_path / "README.md").read_text()
    assert "| softmax-classifier | agree |" in index


@pytest.mark.slow
def test_bench_json_has_the_documented_fields(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "softmax-classifier", "--frameworks", "numpy,keras,torch", "--repeat", "1", "--json",
                 str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["scenario"] == "softmax-classifier" and data["fit_baseline_seconds"] is None
    assert {r["framework"] for r in data["results"]} == {"numpy", "keras", "torch"}
    numpy_row = next(r for r in data["results"] if r["framework"] == "numpy")
    assert numpy_row["ratio_to_numpy"] == 1.0
    assert all(r["dtype"] == "float64" and r["seconds"] > 0 for r in data["results"])


# --- one vocabulary: agree / differ, explained / disagree; "ok" a CI script can trust ---------

SMALL_MLP = (Path(__file__).resolve().parent / "scenarios" / "small-mlp.toml").read_text()
SGD = 'optimizer = { name = "sgd", learning_rate = 0.05 }'
ADAM = 'optimizer = { name = "adam", learning_rate = 0.01 }'


@pytest.mark.slow
def test_json_ok_is_true_for_a_pair_that_differs_explained(tmp_path, capsys):
    """The catalogue's Adam style: Keras and torch differ only by Adam's convention, which the
    reference explains: each pair agrees or differs, explained, so ok (and exit 0)."""
    assert SMALL_MLP.count(SGD) == 1
    path = tmp_path / "small-adam.toml"
    path.write_text(SMALL_MLP.replace(SGD, ADAM))
    out = tmp_path / "run.json"
    assert main(["run", str(path), "--dtype", "float64", "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert data["ok"] is True and data["agree"] is True and data["state"] == "differ, explained"
    states = {(c["a"], c["b"]): c["state"] for c in data["comparisons"]}
    assert states == {("numpy[keras]", "numpy[torch]"): "differ, explained", ("numpy[keras]", "keras"): "agree",
                      ("numpy[torch]", "torch"): "agree", ("keras", "torch"): "differ, explained"}
    kt = next(c for c in data["comparisons"] if (c["a"], c["b"]) == ("keras", "torch"))
    assert (kt["agree"], kt["explained"], kt["ok"]) == (False, True, True)
    assert kt["verdict"].startswith("differ, explained: Adam epsilon placement")
    assert kt["diagnosis"]["cause"] == "optimizer convention" and kt["diagnosis"]["suspect"] is None
    assert kt["diagnosis"]["stage"] == "updated layers.0.kernel" and kt["diagnosis"]["step"] == 0
    assert kt["diagnosis"]["confirmed_by"] == ("keras vs numpy[keras] (float64); numpy[keras] and numpy[torch] "
                                              "against their convention's update rule, computed independently")
    printed = capsys.readouterr().out
    assert "Verdict: differ, explained (pairs: 2 agree, 2 differ, explained, 0 disagree)" in printed
    assert "### keras-torch (float64, differ, explained): optimizer convention" in printed
    assert "disagrees" not in printed and "DISAGREE" not in printed


@pytest.mark.slow
def test_json_ok_covers_every_variant_and_the_lab_values(tmp_path):
    """A file with variants: "ok" over all of them; a printed lab value the reference misses makes
    it false although every pair agrees."""
    variants = """
[[variants]]
name = "sgd"
[[variants]]
name = "adam"
set = { "training.optimizer" = { name = "adam", learning_rate = 0.01 } }
"""
    path, out = tmp_path / "v.toml", tmp_path / "v.json"
    path.write_text(SMALL_MLP + variants)
    assert main(["run", str(path), "--dtype", "float64", "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert (data["ok"], data["agree"]) == (True, True)
    assert [(s["scenario"], s["state"], s["ok"]) for s in data["scenarios"]] == [
        ("small-mlp-sgd", "agree", True), ("small-mlp-adam", "differ, explained", True)]
    wrong_lab = '\n[[variants.lab_values]]\nwhat = "loss"\nstep = 0\nvalue = 123.0\ndecimals = 2\n'
    path.write_text(SMALL_MLP + variants.replace('name = "sgd"\n', 'name = "sgd"' + wrong_lab))
    assert main(["run", str(path), "--dtype", "float64", "--json", str(out), "--quiet"]) == 1
    data = json.loads(out.read_text())
    assert (data["ok"], data["agree"]) == (False, True)
    assert [s["ok"] for s in data["scenarios"]] == [False, True]
    # a failing result never says "agree": its state disagrees, and its summary says why
    assert [s["state"] for s in data["scenarios"]] == ["disagree", "differ, explained"]
    assert "The reference misses 1 of the 1 values the lab printed" in data["scenarios"][0]["summary"]


@pytest.mark.parametrize("argv", [["bench"], ["bench", "tiny-mlp", "--catalogue"]])
def test_bench_takes_a_scenario_or_the_catalogue(argv, capsys):
    assert main(argv) == 2
    assert "scenario: expected a scenario name or file, or --catalogue (not both)" in capsys.readouterr().err


def test_executor_ray_without_the_extra_is_bad_input(monkeypatch, capsys):
    reason = "ray is not installed (pip install 'nn-parity[ray]')"
    monkeypatch.setattr(harness.commands.cli, "ray_missing", lambda: reason)
    assert main(["run", "tiny-mlp", "--executor", "ray"]) == 2
    assert ("--executor: expected an installed executor; received \"ray, but ray is not installed (pip install "
            "'nn-parity[ray]')\"") in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["list"],
                                  ["check", "scenarios/keys/001-lecture-notes.toml", "--frameworks", "numpy"]])
def test_commands_that_need_no_framework_import_none(argv, in_a_fresh_process):
    """`list` and a numpy-only `check` load no framework and no plotting library (a command's module
    is imported only when it runs), so they start fast."""
    code, out, modules = in_a_fresh_process(tuple(argv))
    heavy = ["matplotlib", "plotly", "tensorflow", "keras", "torch", "jax"]
    assert (code, [m for m in heavy if m in modules]) == (0, []), out
