"""The command line: list, run (exit codes, JSON), skipped frameworks, report, bench output format."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.commands.cli import main
from harness.run.adapters import ADAPTERS
from harness.run.runner import run_scenario
from harness.spec.catalogue import resolve


def test_list_imports_no_framework():
    code = ("import sys; from harness.commands.cli import main; main(['list']); "
            "assert not {'tensorflow', 'keras', 'torch'} & set(sys.modules), sorted(sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
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
    assert src.count("[tolerance]\n") == 1
    path.write_text(src.replace("[tolerance]\n", "[tolerance]\nfloat64 = { rtol = 0.0, atol = 0.0 }\n", 1)
                    .replace("epochs = 5000", "epochs = 50"))
    code = main(["run", str(path), "--frameworks", "numpy,torch", "--dtype", "float64", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "DISAGREE" in out and "rtol=0, atol=0" in out


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
def test_crash_is_recorded_not_raised(monkeypatch):
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
    assert main(["bench", "softmax-classifier", "--repeat", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["scenario"] == "softmax-classifier" and data["fit_baseline_seconds"] is None
    assert {r["framework"] for r in data["results"]} == {"numpy", "keras", "torch"}
    numpy_row = next(r for r in data["results"] if r["framework"] == "numpy")
    assert numpy_row["ratio_to_numpy"] == 1.0
    assert all(r["dtype"] == "float64" and r["seconds"] > 0 for r in data["results"])
