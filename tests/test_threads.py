"""``$NN_PARITY_THREADS`` (harness.run.threads): the threads torch computes with, 1 unless set;
a value that is not a number of threads is one line and exit 2 before anything runs.
``make test-kernels`` runs the kernel-sensitive tests on 1 and 2 threads (the verdicts must not change)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.commands.cli import main
from harness.run.adapters import adapter
from harness.run.plan import make_plan
from harness.spec.catalogue import resolve

TINY = str(Path(__file__).resolve().parent / "scenarios" / "tiny-linear.toml")  # 3 steps


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5", "2 threads", "99999", "\u0662"])
def test_a_bad_thread_count_is_one_line_exit_2(value, monkeypatch, capsys):
    monkeypatch.setenv("NN_PARITY_THREADS", value)
    assert main(["run", "xor-perceptron", "--frameworks", "numpy", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "NN_PARITY_THREADS" in err and "a whole number of threads" in err


@pytest.mark.xdist_group(name="torch-in-process")  # torch in the pytest process (tests/conftest.py, _group)
@pytest.mark.parametrize("value, threads", [("2", 2), ("", 1), (None, 1)])
def test_torch_runs_on_the_threads_the_variable_names(value, threads, monkeypatch, frameworks_in_process):
    torch = pytest.importorskip("torch")
    if value is None:
        monkeypatch.delenv("NN_PARITY_THREADS", raising=False)
    else:
        monkeypatch.setenv("NN_PARITY_THREADS", value)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # neither 1 nor 2: the run must set it
    try:
        trajectory = adapter("torch").run(make_plan(resolve(TINY), "float64"))
        assert trajectory.ok, trajectory.message
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
