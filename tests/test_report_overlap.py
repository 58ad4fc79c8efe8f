"""``nn-parity report`` takes up each scenario as soon as its own runs are made: it is judged, explained,
diagnosed and its report's files made while the job slots make the other scenarios' runs
(``harness.pipeline.report_scenarios``). The runs finish in another order than the report lists them;
the reports are still byte-identical to those made one run at a time. Real CLI calls."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

import harness.pipeline
from harness.commands.cli import main
from harness.pipeline import prepare, report_scenarios
from harness.run.adapters import use_jobs
from harness.run.adapters.workers import stop_all
from harness.spec.scenario import load_scenarios

TINY = Path(__file__).resolve().parent / "scenarios" / "tiny-mlp.toml"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.endswith(".timings.tsv")}


@pytest.mark.slow  # real torch runs
def test_reports_made_while_the_runs_compute_are_those_made_one_at_a_time(tmp_path: Path) -> None:
    # a longer second scenario: its runs are taken first, and torch's finish before the reference's
    longer = tmp_path / "longer.toml"
    longer.write_text(TINY.read_text().replace('name = "tiny-mlp"', 'name = "longer"').replace("epochs = 4",
                                                                                              "epochs = 400"))
    scenarios = ["--scenario", str(TINY), "--scenario", str(longer)]
    outs = {}
    try:
        for jobs in ("1", "2"):
            stop_all()
            out = tmp_path / f"jobs-{jobs}"
            assert main(["report", *scenarios, "--frameworks", "numpy,torch", "--out", str(out), "--quiet",
                         "--no-cache", "--jobs", jobs]) == 0
            outs[jobs] = _files(out)
    finally:
        stop_all()
    assert {"tiny-mlp.md", "longer.md", "README.md"} <= set(outs["1"])
    assert outs["1"] == outs["2"]


def test_a_report_that_fails_is_said_and_the_others_are_written(tmp_path: Path, monkeypatch, capsys) -> None:
    """A harness error in one scenario's report (its diagnosis here), made on a thread while the other
    scenario's runs compute: that report is not written, said on stderr, the other one is, exit 1."""
    real = harness.pipeline.diagnose

    def broken(result, **options):
        if result.scenario.name == "tiny-mlp":
            raise RuntimeError("diagnosis failed")
        return real(result, **options)

    monkeypatch.setattr(harness.pipeline, "diagnose", broken)
    longer = tmp_path / "longer.toml"
    longer.write_text(TINY.read_text().replace('name = "tiny-mlp"', 'name = "longer"'))
    out = tmp_path / "out"
    assert main(["report", "--scenario", str(TINY), "--scenario", str(longer), "--frameworks", "numpy",
                 "--out", str(out), "--quiet", "--no-cache", "--jobs", "2"]) == 1
    assert "tiny-mlp: report not written, the previous one is kept (RuntimeError: diagnosis failed)" in \
        capsys.readouterr().err
    assert (out / "longer.md").is_file() and not (out / "tiny-mlp.md").exists()


def test_a_scenario_with_no_run_to_make_is_still_reported() -> None:
    """A scenario whose every run is left out (no implementation to run) has no run whose end takes it
    up: it is taken up at once, not waited for forever."""
    [scenario] = load_scenarios(TINY)
    prepared = [prepare(scenario, frameworks=()), prepare(scenario, frameworks=("numpy",))]
    out: list[list[str]] = []
    with use_jobs(2):
        call = threading.Thread(target=lambda: out.append([made for _, made in report_scenarios(
            prepared, lambda result, diagnoses: result.scenario.name)]), daemon=True)
        call.start()
        call.join(timeout=60)
    assert not call.is_alive(), "the report waited for a run that is never made"
    assert out == [["tiny-mlp", "tiny-mlp"]]
