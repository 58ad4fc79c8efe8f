"""Keras on JAX and on torch, each in a worker process of its own (``harness.run.adapters.workers``).

Real spawned processes, real Keras backends: a run in a worker matches the same run's numbers
when it comes back; a worker killed in the middle of a run gives a ``crashed`` run naming the
signal while the other implementations' runs go on; a run that does not answer within its
timeout is killed; the next call gets a fresh worker.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from harness.commands.args import frameworks_arg
from harness.commands.cli import main
from harness.pipeline import run_scenario
from harness.run.adapters import ALL_FRAMEWORKS, FRAMEWORKS, _cancel, _run, adapter, run_framework, workers
from harness.run.adapters.protocol import missing
from harness.run.adapters.schedule import feed
from harness.run.adapters.workers import Worker, WorkerCrashed, run_timeout, stop_all, worker
from harness.run.plan import make_plan
from harness.run.trajectory import CRASHED
from harness.spec.catalogue import resolve
from harness.spec.scenario import load_scenarios
from tests.children import INTERRUPTIBLE, descendants

pytestmark = pytest.mark.slow  # every test starts Keras in a worker process

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def scenario(name: str):
    [s] = load_scenarios(SCENARIOS / f"{name}.toml")
    return s


@pytest.fixture(autouse=True)
def fresh_workers():
    stop_all()
    yield
    stop_all()


def test_the_default_set_stays_numpy_keras_torch_and_all_adds_the_backends():
    assert FRAMEWORKS == ("numpy", "keras", "torch")
    assert ALL_FRAMEWORKS == ("numpy", "keras", "torch", "keras@jax", "keras@torch")
    assert frameworks_arg("all") == ALL_FRAMEWORKS
    assert frameworks_arg("numpy,keras@tensorflow,keras@jax") == ("numpy", "keras", "keras@jax")
    with pytest.raises(argparse.ArgumentTypeError, match="keras@jax"):
        frameworks_arg("keras@mxnet")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_on_a_backend_runs_in_its_own_process_and_trains(backend):
    s = scenario("tiny-mlp")
    plan = make_plan(s, "float32")
    run = run_framework(f"keras@{backend}", plan)
    assert run.ok, run.message
    assert run.framework == f"keras@{backend}" and run.steps == plan.max_steps
    assert worker(f"keras@{backend}").process.pid != os.getpid()
    reference = run_framework("numpy", plan)
    np.testing.assert_allclose(run.losses, reference.losses, rtol=1e-5)  # float32: within its tolerance
    assert run.computed_dtypes["parameters"] == "float32"
    assert all(np.array_equal(a, b) for a, b in zip(run.batch_rows, reference.batch_rows))
    # the trace of a step replays the run in the same worker
    trace = adapter(f"keras@{backend}").trace_step(plan, 2)
    np.testing.assert_array_equal(trace["loss"], run.losses[2])


def test_a_worker_killed_during_a_run_is_a_crashed_run_and_the_others_go_on():
    s = scenario("tiny-mlp")
    worker("keras@jax")  # started before the run, killed while it runs (Keras' import alone takes seconds)
    pid = worker("keras@jax").process.pid
    threading.Timer(0.5, os.kill, args=(pid, signal.SIGKILL)).start()
    result = run_scenario(s, frameworks=("numpy", "keras@jax", "torch"), dtypes=("float64",))
    crashed = result.runs[("keras@jax", "float64")]
    assert crashed.status == CRASHED
    assert "keras@jax worker process killed by SIGKILL" in crashed.message
    assert result.runs[("numpy", "float64")].ok and result.runs[("torch", "float64")].ok
    assert not result.ok  # a crashed run never passes
    assert [c.pair for c in result.comparisons] == ["numpy-torch"]
    again = run_framework("keras@jax", make_plan(s, "float64"))  # a fresh worker takes over
    assert again.ok and worker("keras@jax").process.pid != pid


def test_a_worker_that_does_not_answer_in_time_is_killed():
    with run_timeout(0.2), pytest.raises(WorkerCrashed, match="did not answer within 0.2 s"):
        adapter("keras@torch").run(make_plan(scenario("tiny-mlp"), "float64"))  # Keras' import alone takes longer


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """Spawned workers must not re-run the user's script (multiprocessing re-imports ``__main__``
    in a spawned child unless told otherwise). torch's worker is spawned as Keras' is, without its
    4 s of CPU to start."""
    script = tmp_path / "mine.py"
    script.write_text("from pathlib import Path\n"
                      "from harness.pipeline import run_scenario\n"
                      "from harness.spec.scenario import load_scenarios\n"
                      f"[s] = load_scenarios({str(SCENARIOS / 'tiny-mlp.toml')!r})\n"
                      "print('top-level ran', flush=True)\n"
                      "print('ok' if run_scenario(s, frameworks=('numpy', 'torch'), dtypes=('float32',)).ok "
                      "else 'not ok', flush=True)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["top-level ran", "ok"]


def test_ctrl_c_during_the_runs_ends_the_workers(tmp_path):
    """SIGINT while keras and torch compute in their workers: exit 130 with one line, and no worker
    process is left behind."""
    command = ("import sys\n"
               "from harness.commands.cli import main\n"
               "sys.exit(main(['run', 'sigmoid-exponential-adam', '--no-cache']))\n")
    child = subprocess.Popen([sys.executable, "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True, **INTERRUPTIBLE)
    deadline = time.monotonic() + 300  # a generous wait for an event: both workers started
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = [pid for pid in descendants(child.pid) if _is_worker(pid)]  # not multiprocessing's tracker
    assert len(workers) >= 2, "keras and torch run in worker processes"
    time.sleep(1.0)  # into the runs
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and err.decode().strip().splitlines()[-1] == "nn-parity: interrupted", \
        (child.returncode, err.decode()[-2000:])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")]


def _is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_a_run_over_the_timeout_is_crashed_and_the_others_go_on(tmp_path, capsys):
    """`--timeout`: a framework run that takes longer is killed (its worker with it) and reported as
    crashed with the reason; the reference's run is compared with nothing but still made."""
    out = tmp_path / "run.json"
    assert main(["run", str(SCENARIOS / "tiny-mlp.toml"), "--dtype", "float64", "--timeout", "0.3", "--no-cache",
                 "--quiet", "--json", str(out)]) == 1  # Keras' import alone takes longer than 0.3 s
    capsys.readouterr()
    runs = {r["framework"]: r for r in json.loads(out.read_text())["runs"]}
    assert runs["numpy"]["status"] == "ok"
    for framework in ("keras", "torch"):
        assert runs[framework]["status"] == "crashed"
        assert f"the {framework} worker did not answer within 0.3 s (killed)" in runs[framework]["message"]


def test_an_adapter_names_the_first_module_it_lacks():
    from_adapters = [adapter(name).available() for name in ALL_FRAMEWORKS]
    assert from_adapters == [None] * len(ALL_FRAMEWORKS)  # make installs every framework
    assert missing("numpy", "no_such_framework_here", "neither_this") == "no_such_framework_here is not installed"
    assert missing("numpy") is None


def _same_run(a, b) -> bool:
    return (np.array_equal(a.losses, b.losses) and a.stopped_early_at == b.stopped_early_at
            and all(np.array_equal(a.params[k], b.params[k]) and np.array_equal(a.grads[k], b.grads[k])
                    for k in a.params)
            and len(a.batch_rows) == len(b.batch_rows)
            and all(np.array_equal(x, y) for x, y in zip(a.batch_rows, b.batch_rows)))


def test_keras_on_jax_reuses_its_compiled_loop_without_carrying_state_between_uses():
    """The worker builds keras@jax's model and compiles its loop once per network and dtype: a second run,
    a run cut after 3 steps and a traced step of the same plan give the first run's numbers bitwise
    (shuffled batches of 5 with a short last batch of 2, Nesterov momentum: an optimizer state that a
    reuse could carry over), and the early stop ends where the reference's does."""
    plan = make_plan(resolve("minibatch-nesterov"), "float64")
    jax = adapter("keras@jax")
    first, again = jax.run(plan), jax.run(plan)
    assert first.ok and _same_run(first, again)
    cut = jax.run(plan.first_steps(3))
    assert cut.steps == 3 and np.array_equal(cut.losses, first.losses[:3])
    assert all(np.array_equal(cut.params[k], first.params[k][:3]) for k in first.params)
    trace = jax.trace_step(plan, 5)  # step 5: the short last batch (2 of the 12 rows) of the second epoch
    assert np.array_equal(trace["loss"], first.losses[5])
    assert all(np.array_equal(trace[f"updated {k}"], first.params[k][5]) and
               np.array_equal(trace[f"params {k}"], first.params[k][4]) for k in first.params)
    reference = run_framework("numpy", plan)
    assert all(np.array_equal(a, b) for a, b in zip(first.batch_rows, reference.batch_rows))
    assert [len(rows) for rows in first.batch_rows[:6]] == [5, 5, 2, 5, 5, 2]

    stopping = make_plan(resolve("minibatch-regression"), "float64")  # the labs' early stop binds
    run, numpy_run = jax.run(stopping), run_framework("numpy", stopping)
    assert run.stopped_early_at is not None and run.stopped_early_at == numpy_run.stopped_early_at
    assert run.steps == numpy_run.steps < stopping.max_steps


@pytest.mark.slow
def test_a_worker_stopped_by_two_threads_at_once_is_stopped_once() -> None:
    """The thread that starts a worker and ``stop_all`` (a Ctrl-C) may stop it at the same moment: the
    second stop returns without closing the pipe again (two closes raced: EBADF made a Ctrl-C while a
    worker started exit 1, not 130, in test_report_interrupt, once in three fresh-clone runs)."""
    for _ in range(3):
        w = Worker("numpy")
        barrier, errors = threading.Barrier(3), []

        def stop(w: Worker = w, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                w.stop()
            except Exception as exc:  # noqa: BLE001 - any error of a second stop is the failure
                errors.append(exc)
        threads = [threading.Thread(target=stop) for _ in range(2)]
        for t in threads:
            t.start()
        barrier.wait()
        for t in threads:
            t.join(30)
        assert not errors and not w.alive and w._conn.closed
        w.stop()  # a third stop, later: nothing left to do


@pytest.mark.slow
def test_a_stop_all_while_a_worker_is_being_started_ends_its_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """``stop_all`` (a Ctrl-C) that looks after a worker is listed and before its process exists finds
    nothing to end; the worker's start, seeing that ``stop_all`` ran, stops it again: its process is
    ended then. Before, that second stop returned at once (the first had marked it stopped): the
    process ran on, and a call into it waited out ``_death``'s 5 s join (CI: a Ctrl-C took 6.8 s)."""
    real = workers._SPAWNER.run

    def a_ctrl_c_first(job) -> None:  # the Ctrl-C lands while the worker is being started
        stop_all()
        real(job)
    monkeypatch.setattr(workers._SPAWNER, "run", a_ctrl_c_first)
    w = Worker("numpy")
    try:
        assert w.process.pid is not None  # its process was started
        assert not w.alive and w.process.exitcode == -signal.SIGKILL
        with pytest.raises(WorkerCrashed, match="killed by SIGKILL"):
            w.call("run")
    finally:
        if w.alive:
            w.process.kill()


@pytest.mark.slow
def test_a_job_slot_that_reaches_its_worker_after_a_ctrl_c_starts_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slot that took its run before the Ctrl-C and asks for its worker after ``stop_all`` ended the
    others: no worker is started, its run is ``crashed`` ("not started") and the interrupt is raised
    without waiting for a framework's import and a run (before: a torch worker started after the
    interrupt, and ``feed`` waited for it; CI measured 6.8 s for a Ctrl-C)."""
    started: list[object] = []
    real = workers._SPAWNER.run
    monkeypatch.setattr(workers._SPAWNER, "run", lambda job: (started.append(job), real(job))[-1])
    cancelled, taken, made = threading.Event(), threading.Event(), []
    plan = make_plan(scenario("tiny-mlp"), "float64")

    def make(job: int) -> None:
        if job == 0:  # the harness's own run, in the calling thread: the Ctrl-C, once the slot has its run
            assert taken.wait(30)
            raise KeyboardInterrupt
        taken.set()
        assert cancelled.wait(30)  # the slot reaches its worker after the interrupt
        made.append(_run("torch", plan))

    with pytest.raises(KeyboardInterrupt):
        feed({"torch": [1]}, [0], make, costs={1: 1.0}, parallel=1, cancelled=cancelled,
             cancel=partial(_cancel, cancelled))
    assert started == []
    [run] = made
    assert run.status == CRASHED and run.message == "the torch worker was not started: the command is ending " \
                                                    "(interrupted)"
    assert run_framework("torch", plan).status != CRASHED  # a thread outside the cancelled slots still starts one
