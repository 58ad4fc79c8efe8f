"""The Ray executor (an optional extra): every run a Ray task with one CPU, on a local Ray instance
the test starts itself (``ray.init(num_cpus=2)``, no outside cluster); the results are the local
executor's, exactly. Without the extra the tests that start Ray are skipped, naming the reason
(``ray`` is imported by the fixture that starts it, not at collection: importing it costs every
pytest process, each pytest-xdist worker included, half a second)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.commands.cli import main
from harness.pipeline import run_scenario
from harness.run.adapters import use_executor
from harness.run.adapters.ray_executor import RayExecutor
from harness.spec.scenario import load_scenarios

pytestmark = pytest.mark.slow

TINY = Path(__file__).resolve().parent / "scenarios" / "tiny-mlp.toml"


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'nn-parity[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_runs_made_as_ray_tasks_are_the_local_runs(local_ray):
    [s] = load_scenarios(TINY)
    local = run_scenario(s)
    with use_executor(RayExecutor()):
        on_ray = run_scenario(s)
    assert set(on_ray.runs) == set(local.runs) and on_ray.ok and local.ok
    for cell, run in local.runs.items():
        other = on_ray.runs[cell]
        assert other.framework == run.framework and other.status == run.status == "ok"
        np.testing.assert_array_equal(other.losses, run.losses)
        for name, values in run.params.items():
            np.testing.assert_array_equal(other.params[name], values)
    assert [c.state for c in on_ray.comparisons] == [c.state for c in local.comparisons]


def test_the_cli_runs_on_ray_with_the_same_json(local_ray, tmp_path, capsys, json_without_timings):
    for executor in ("local", "ray"):
        assert main(["run", str(TINY), "--no-cache", "--executor", executor, "--quiet",
                     "--json", str(tmp_path / f"{executor}.json")]) == 0
    capsys.readouterr()

    local, on_ray = (json_without_timings(tmp_path / f"{e}.json") for e in ("local", "ray"))
    assert local == on_ray


def test_address_without_ray_is_bad_input(capsys):
    assert main(["run", str(TINY), "--address", "ray://nowhere:10001"]) == 2
    assert "--address: expected --executor ray with it" in capsys.readouterr().err
