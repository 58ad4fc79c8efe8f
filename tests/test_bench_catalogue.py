"""``nn-parity bench --catalogue``: both catalogues (the default frameworks' and ``--frameworks``'),
each timed cold one run at a time, cold with ``--jobs`` and from the cache, the same verdicts in
the three passes, and the peak resident memory; and the CPU seconds of each implementation in
``bench NAME``. The figures' fields only: no test times anything."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.commands.bench import catalogue_sets
from harness.commands.bench_catalogue import differences
from harness.commands.cli import main
from harness.run.adapters import ALL_FRAMEWORKS, FRAMEWORKS

TINY = Path(__file__).resolve().parent / "scenarios" / "tiny-linear.toml"
PASSES = ("serial_seconds", "parallel_seconds", "cached_seconds")


def test_differences_name_the_scenario_and_each_pass_verdict() -> None:
    same, other = ("tiny", True, "agree", (), ()), ("tiny", False, "disagree", (), ())
    assert differences({"serial": [same], "parallel": [same], "cached": [same]}) == []
    [found] = differences({"serial": [other], "parallel": [same], "cached": [same]})
    assert found["scenario"] == "tiny" and "False" in found["serial"] and "True" in found["parallel"]


def test_the_catalogues_are_the_default_and_the_frameworks_asked() -> None:
    assert catalogue_sets(None) == {"default": FRAMEWORKS}
    assert catalogue_sets(FRAMEWORKS) == {"default": FRAMEWORKS}
    assert catalogue_sets(ALL_FRAMEWORKS) == {"default": FRAMEWORKS, "backends": ALL_FRAMEWORKS}
    assert catalogue_sets(("numpy", "torch")) == {"default": FRAMEWORKS, "numpy,torch": ("numpy", "torch")}


@pytest.mark.slow
def test_bench_catalogue_reports_three_passes_of_both_catalogues_and_the_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    catalogue = tmp_path / "scenarios"
    catalogue.mkdir()
    shutil.copy(TINY, catalogue / "tiny.toml")
    monkeypatch.setenv("NN_PARITY_SCENARIOS", str(catalogue))
    out = tmp_path / "bench.json"
    assert main(["bench", "--catalogue", "--frameworks", "numpy,torch", "--jobs", "2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["scenarios"] == 1 and data["jobs"] == 2
    assert list(data["catalogues"]) == ["default", "numpy,torch"]
    assert data["catalogues"]["numpy,torch"]["frameworks"] == ["numpy", "torch"]
    for figures in [data, *data["catalogues"].values()]:
        assert figures["same_results"] is True
        assert all(figures[p] > 0 for p in PASSES)
        assert figures["parallel_ratio"] == figures["parallel_seconds"] / figures["serial_seconds"]
    assert all(c["differences"] == [] for c in data["catalogues"].values())
    assert data["serial_seconds"] == sum(c["serial_seconds"] for c in data["catalogues"].values())
    # this process and its workers (a torch worker alone holds far more than this process's share)
    assert data["largest_process_bytes"] > 50 * 2**20
    assert data["peak_resident_bytes"] >= data["largest_process_bytes"] / 2
    printed = capsys.readouterr().out
    assert "default (numpy, keras, torch):" in printed and "numpy,torch (numpy, torch):" in printed
    assert "same verdicts in the three passes: yes" in printed and "peak resident memory" in printed


@pytest.mark.slow
def test_bench_json_has_cpu_seconds_measured_in_each_worker(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", str(TINY), "--frameworks", "numpy,torch", "--repeat", "1", "--json", str(out)]) == 0
    rows = {r["framework"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["numpy"]["cpu_ratio_to_numpy"] == 1.0
    assert rows["torch"]["cpu_seconds"] > 0
    # each ratio is to the reference timed in turn with it; the reference's row has its best of them all
    torch_row = rows["torch"]
    assert torch_row["cpu_ratio_to_numpy"] == torch_row["cpu_seconds"] / torch_row["reference_cpu_seconds"]
    assert torch_row["ratio_to_numpy"] == torch_row["seconds"] / torch_row["reference_seconds"]
    assert rows["numpy"]["reference_cpu_seconds"] == rows["numpy"]["cpu_seconds"] <= torch_row["reference_cpu_seconds"]
