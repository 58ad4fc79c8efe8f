"""Where a report was made, and where it goes.

Each report, the index (markdown and HTML) and the run's JSON name the environment that produced
them (``harness.run.environment``: CPU, BLAS kernel and threads, the frameworks' threads, versions,
numeric variables), with no absolute path; the same inputs on the same machine give the same bytes,
whichever process writes them. ``nn-parity report`` and ``make report`` write into a git-ignored
folder, so a fresh clone's ``make report`` leaves ``git status`` clean on any machine; only
``make publish`` writes the committed catalogue ``reports/``."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from harness.commands.cli import main
from harness.commands.report import DEFAULT_OUT
from harness.render.index import index_markdown
from harness.render.legacy import UNKNOWN_ENVIRONMENT
from harness.run import environment
from harness.run.threads import framework_threads

ROOT = Path(__file__).resolve().parent.parent
TINY = (ROOT / "tests" / "scenarios" / "tiny-mlp.toml").read_text()


@pytest.fixture
def fresh_description() -> Iterator[None]:
    """``environment.describe()`` computed again after the test changed the environment, and again
    after the test (it is computed once per process)."""
    environment.describe.cache_clear()
    yield
    environment.describe.cache_clear()


# --- the description -----------------------------------------------------------------

def test_the_description_names_cpu_kernel_threads_and_versions():
    d, line = environment.public(), environment.environment_line()
    assert d["cpu"] == environment.cpu_model() and d["cpu"] in line
    assert d["framework_threads"] == framework_threads()
    assert f"torch and TensorFlow on {framework_threads()} thread" in line
    for name, version in environment.versions().items():
        assert f"{name} {version}" in line
    [numpy_blas, *_] = environment.blas()  # numpy's BLAS is loaded: threadpoolctl describes it
    assert f"{numpy_blas['internal_api']} {numpy_blas['version']}" in line
    assert f", {numpy_blas['num_threads']} thread" in line
    if "architecture" in numpy_blas:  # OpenBLAS names its kernel; other BLAS libraries do not
        assert f"({numpy_blas['architecture']} kernel)" in line


def test_an_absolute_path_in_a_variable_is_not_shown_but_still_keys_the_cache(monkeypatch, fresh_description):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/home/someone/dump --xla_cpu_fast_math=false")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "C:\\Users\\someone\\ext")
    monkeypatch.setenv("OMP_NUM_THREADS", "1\n2")
    shown = environment.public()["variables"]
    assert shown["XLA_FLAGS"] == "--xla_dump_to=(path) --xla_cpu_fast_math=false"
    assert shown["TORCH_EXTENSIONS_DIR"] == "(path)" and shown["OMP_NUM_THREADS"] == "1 2"
    line = environment.environment_line()
    assert "someone" not in line and "\n" not in line and "XLA_FLAGS=--xla_dump_to=(path)" in line
    assert environment.describe()["variables"]["XLA_FLAGS"].endswith("/home/someone/dump --xla_cpu_fast_math=false")


def test_the_description_does_not_depend_on_whether_a_framework_was_loaded(monkeypatch, fresh_description):
    """The adapters set KERAS_BACKEND and (unless the user did) TF_ENABLE_ONEDNN_OPTS=0 when they load
    Keras: a report written after a framework ran in-process says the same as one written before."""
    for name in ("KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS"):
        monkeypatch.delenv(name, raising=False)
    before = environment.numeric_variables()
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert environment.numeric_variables() == before and before["TF_ENABLE_ONEDNN_OPTS"] == "0"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")  # the user's choice is what the runs use, and is named
    assert environment.numeric_variables()["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert "TF_ENABLE_ONEDNN_OPTS=1" in environment.environment_line()


# --- the index ---------------------------------------------------------------------------

def _summary(name: str, where: str | None) -> dict[str, object]:
    s: dict[str, object] = {"name": name, "title": name, "verdict": "agree", "lab": "-", "worst": "-", "causes": [],
                            "line": "-"}
    if where is not None:
        s["environment"] = where
    return s


def test_an_index_over_reports_from_several_machines_names_each_with_its_count():
    md = index_markdown([_summary("a", "machine one"), _summary("b", "machine two"), _summary("c", "machine one"),
                         _summary("d", UNKNOWN_ENVIRONMENT)])
    assert "Environments: the reports were made in 3 different ones" in md
    assert "- 2: machine one\n- 1: machine two\n- 1: not recorded" in md
    assert "Environment: machine one.\n" in index_markdown([_summary("a", "machine one")])


# --- real reports (the tiny scenario in numpy, Keras and torch) -----------------------------

@pytest.mark.slow
def test_reports_index_html_and_json_name_the_environment_and_no_path(tmp_path, monkeypatch, fresh_description):
    """A numeric variable that holds a path of this machine: named, its path not."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    (tmp_path / "tiny-mlp.toml").write_text(TINY)
    out = tmp_path / "out"
    assert main(["report", "--scenario", str(tmp_path / "tiny-mlp.toml"), "--out", str(out), "--html",
                 "--quiet"]) == 0
    assert main(["run", str(tmp_path / "tiny-mlp.toml"), "--json", str(out / "run.json"), "--quiet"]) == 0
    line = environment.environment_line()
    assert "TORCH_HOME=(path)" in line and environment.cpu_model() in line
    report = (out / "tiny-mlp.md").read_text()
    assert f"\nEnvironment: {line}.\n" in report.split("## How the difference grows")[0]  # above the fold
    section = report[report.index("## Environment"):]
    for what, text in environment.parts().items():
        assert f"- {what[0].upper() + what[1:]}: {text}\n" in section
    assert f"\nEnvironment: {line}.\n" in (out / "README.md").read_text()
    assert f"<p>Environment: {line}.</p>" in (out / "index.html").read_text()
    assert f"Environment: {line}." in (out / "tiny-mlp.html").read_text()
    payload = json.loads((out / "run.json").read_text())
    assert payload["environment"] == json.loads(json.dumps(environment.public()))
    assert payload["environment"]["variables"]["TORCH_HOME"] == "(path)"
    for path in out.iterdir():
        assert str(tmp_path).encode() not in path.read_bytes(), path.name
        if path.suffix != ".png":  # no absolute path, of this machine or another
            assert not re.search(r"(?<![\w.~-])/(home|root|tmp|usr|opt|work|Users)/", path.read_text()), path.name


@pytest.mark.slow
def test_another_process_writes_the_same_bytes(tmp_path, frameworks_in_process, fresh_description):
    """The report and index written in this process (the frameworks asked to run in it) and by a fresh
    ``python -m harness report`` (the frameworks in their workers): byte for byte the same, the
    environment's description included."""
    (tmp_path / "tiny-mlp.toml").write_text(TINY)
    assert main(["report", "--scenario", str(tmp_path / "tiny-mlp.toml"), "--out", str(tmp_path / "here"),
                 "--quiet"]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "harness", "report", "--scenario", "tiny-mlp.toml", "--out", "there",
                    "--quiet"], cwd=tmp_path, env=env, check=True, timeout=600)
    here, there = (sorted(p.name for p in (tmp_path / d).iterdir()) for d in ("here", "there"))
    assert here == there
    for name in here:
        if not name.endswith(".timings.tsv"):
            assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes(), name


# --- a clean tree ---------------------------------------------------------------------

def _ignored(path: str) -> bool:
    """Whether git ignores ``path`` (relative to the repository) in this checkout."""
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert done.returncode in (0, 1), f"git check-ignore failed for {path}"
    return done.returncode == 0


def _report_commands(target: str) -> list[str]:
    """The ``nn-parity report`` command lines ``make -n <target>`` would run."""
    printed = subprocess.run(["make", "-n", "--no-print-directory", target], cwd=ROOT, capture_output=True,
                             text=True, check=True, timeout=60).stdout
    return [line for line in printed.splitlines() if "nn-parity report" in line]


def test_make_report_writes_only_into_an_ignored_folder_and_make_publish_into_the_committed_one():
    report = _report_commands("report")
    assert len(report) == 2 and all(re.search(rf"--out {DEFAULT_OUT}(/backends)?$", line) for line in report)
    for folder in (DEFAULT_OUT, f"{DEFAULT_OUT}/backends"):
        for name in ("README.md", "index.html", "tiny-mlp.md", "tiny-mlp.html", "tiny-mlp-loss-0123456789ab.png",
                     "tiny-mlp.timings.tsv"):
            assert _ignored(f"{folder}/{name}"), f"{folder}/{name}"
    publish = _report_commands("publish")
    assert [line.split("--out ")[1] for line in publish] == ["reports", "reports/backends"]
    for path in ("reports/README.md", "reports/minibatch-momentum.md", "reports/backends/README.md",
                 "reports/minibatch-momentum-loss-0123456789ab.png"):
        assert not _ignored(path), path
    assert _ignored("reports/minibatch-momentum.timings.tsv")  # wall-clock seconds are never committed


@pytest.mark.slow
def test_nn_parity_report_by_default_writes_the_ignored_folder_not_the_published_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny-mlp.toml").write_text(TINY)
    assert main(["report", "--scenario", "tiny-mlp.toml", "--quiet"]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()
                  and p.suffix != ".png") == [f"{DEFAULT_OUT}/README.md", f"{DEFAULT_OUT}/tiny-mlp.md",
                                              f"{DEFAULT_OUT}/tiny-mlp.timings.tsv", "tiny-mlp.toml"]
    assert not (tmp_path / "reports").exists() and _ignored(f"{DEFAULT_OUT}/tiny-mlp.md")
