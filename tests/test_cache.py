"""The run cache cannot lie (issue 19): its key sees what the interpreter runs, its entries are
data, its folder is checked, and ``--verify-cache`` / ``nn-parity cache verify`` remake a cached
run's first steps and evict one that no longer reproduces.

Real processes throughout: the planted defect is a ``sitecustomize.py`` on ``PYTHONPATH`` that
every process of the command runs (the torch worker too), as a user's environment would.
"""
from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import zipfile
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from harness.commands.cli import main
from harness.pipeline import run_scenario
from harness.render.plots import drawn
from harness.run import environment
from harness.run.adapters import run_framework
from harness.run.adapters.workers import inline
from harness.run.cache import META, RunCache, use_cache
from harness.run.cache_key import describe_plan, key, plan_from
from harness.run.plan import make_plan, side_plan
from harness.run.trajectory import Trajectory
from harness.spec.catalogue import resolve
from harness.spec.conventions import COMMON
from harness.spec.scenario import load_scenarios
from tests.on_first_use import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "scenarios" / "tiny-mlp.toml"
SGD_STEPS_TWICE = """\
import torch

_step = torch.optim.SGD.step


def _twice(self, closure=None):
    _step(self)
    return _step(self, closure)


torch.optim.SGD.step = _twice
"""


def tiny_plan(dtype: str = "float64"):
    return make_plan(load_scenarios(TINY)[0], dtype)


def nn_parity(*args: str, patched: Path | None = None, extra_env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own; ``patched``: a folder holding a ``sitecustomize.py``,
    put first on ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([*([str(patched)] if patched else []), str(ROOT)])
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)


def verdicts(path: Path) -> dict[str, tuple[str, int | None, str | None]]:
    data = json.loads(path.read_text())
    return {f"{c['a']}-{c['b']}": (c["state"], c["first_divergent_step"],
                                   (c.get("diagnosis") or {}).get("suspect")) for c in data["comparisons"]}


@pytest.fixture
def patched_torch(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SGD_STEPS_TWICE)
    return folder


RUN_TINY = ("run", str(TINY), "--dtype", "float64", "--jobs", "2")


@pytest.mark.slow
def test_a_planted_torch_defect_fails_after_a_clean_run_in_the_same_cache(tmp_path, patched_torch):
    cache = tmp_path / "cache"
    clean = nn_parity(*RUN_TINY, "--cache", str(cache), "--json", str(tmp_path / "clean.json"))
    assert clean.returncode == 0, clean.stderr
    patched = nn_parity(*RUN_TINY, "--cache", str(cache), "--json", str(tmp_path / "patched.json"),
                        patched=patched_torch)
    assert patched.returncode == 1, patched.stderr
    found = verdicts(tmp_path / "patched.json")
    assert found["numpy-keras"][0] == "agree"
    assert found["numpy-torch"] == ("disagree", 0, "torch") and found["keras-torch"] == ("disagree", 0, "torch")
    info = nn_parity("cache", "info", "--cache", str(cache))
    assert "environments: 2" in info.stdout  # the patched process made its runs under another key


@pytest.mark.slow
def test_a_clean_run_passes_after_a_planted_defect_in_the_same_cache(tmp_path, patched_torch):
    """numpy and torch only: the defect is torch's (Keras' worker would add 4 s of CPU per command and no claim)."""
    cache = tmp_path / "cache"
    run = (*RUN_TINY, "--frameworks", "numpy,torch", "--cache", str(cache))
    patched = nn_parity(*run, "--json", str(tmp_path / "patched.json"), patched=patched_torch)
    assert patched.returncode == 1 and verdicts(tmp_path / "patched.json")["numpy-torch"][:2] == ("disagree", 0)
    clean = nn_parity(*run, "--json", str(tmp_path / "clean.json"))
    assert clean.returncode == 0, clean.stdout[-2000:] + clean.stderr
    assert {state for state, _, _ in verdicts(tmp_path / "clean.json").values()} == {"agree"}


KEY_OF_TINY = f"""
from harness.run.cache_key import key
from harness.run.plan import make_plan
from harness.spec.scenario import load_scenarios
print(key("torch", "run", make_plan(load_scenarios({str(TINY)!r})[0], "float64")))
"""


def test_a_numeric_environment_variable_or_a_startup_file_gives_another_key(tmp_path):
    def key_under(env: dict[str, str], pythonpath: str = str(ROOT)) -> str:
        clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "TF_ENABLE_ONEDNN_OPTS",
                                                                   "PYTHONPATH")}
        done = subprocess.run([sys.executable, "-c", KEY_OF_TINY], capture_output=True, text=True, check=True,
                              env={**clean, **env, "PYTHONPATH": pythonpath}, timeout=300)
        return done.stdout.strip()

    plain = key_under({})
    assert key_under({}) == plain  # the key is stable
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("X = 1\n")
    others = [key_under({"OPENBLAS_CORETYPE": "Haswell"}), key_under({"TF_ENABLE_ONEDNN_OPTS": "1"}),
              key_under({}, pythonpath=f"{site}{os.pathsep}{ROOT}")]
    assert len({plain, *others}) == 4  # (oneDNN off is the adapters' default: "1" turns it on)


def _libm() -> Path:
    """The C maths library this process loaded (numpy links it): a library any process can preload."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1]
        if "/libm.so" in path or "/libm-" in path:
            return Path(path)
    raise AssertionError("no libm mapped in this process")


def test_a_preloaded_library_gives_another_key_and_so_does_an_edit_of_it(tmp_path):
    """LD_PRELOAD can replace any function a framework calls (a shim making MKL take its Intel code
    path on an AMD CPU changed torch's numbers): a run made under one is never served without it, nor
    after the library's bytes change at the same path."""
    def key_under(env: dict[str, str]) -> str:
        clean = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH")}
        done = subprocess.run([sys.executable, "-c", KEY_OF_TINY], capture_output=True, text=True, check=True,
                              env={**clean, **env, "PYTHONPATH": str(ROOT)}, timeout=300)
        return done.stdout.strip()

    library = tmp_path / "libm.so.6"
    shutil.copyfile(_libm(), library)
    plain, preloaded = key_under({}), key_under({"LD_PRELOAD": str(library)})
    with library.open("ab") as f:  # bytes after an ELF file's sections: it still loads, another file
        f.write(b"\0")
    edited = key_under({"LD_PRELOAD": str(library)})
    paths = key_under({"LD_LIBRARY_PATH": str(tmp_path)})
    assert len({plain, preloaded, edited, paths}) == 4


def _entry_paths(cache: Path, implementation: str) -> list[Path]:
    out = []
    for path in sorted(cache.rglob("*.npz")):
        with zipfile.ZipFile(path) as archive:
            about = json.loads(archive.read(META))["about"]
        if about.get("implementation") == implementation and about.get("method") == "run":
            out.append(path)
    return out


def doctor(path: Path) -> None:
    """Add 1e-9 to the cached losses: the file is still a valid entry under the same key."""
    with zipfile.ZipFile(path) as archive:
        members = {i.filename: archive.read(i.filename) for i in archive.infolist()}
    losses = json.loads(members[META])["value"]["fields"]["losses"]["array"]
    array = np.lib.format.read_array(io.BytesIO(members[f"{losses}.npy"]))
    out = io.BytesIO()
    np.lib.format.write_array(out, array + 1e-9)
    members[f"{losses}.npy"] = out.getvalue()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.slow
def test_verify_cache_evicts_a_doctored_run_says_so_and_makes_it_again(tmp_path, capsys, json_without_timings):
    cache = tmp_path / "cache"
    run = ["run", str(TINY), "--dtype", "float64", "--jobs", "2", "--quiet", "--cache", str(cache)]
    assert main([*run, "--json", str(tmp_path / "cold.json")]) == 0
    [entry] = _entry_paths(cache, "torch")
    doctor(entry)
    assert main(run) == 1  # served as it is, the doctored run disagrees: why the spot check exists
    capsys.readouterr()
    assert main([*run, "--verify-cache", "--json", str(tmp_path / "verified.json")]) == 0
    err = capsys.readouterr().err
    assert "cached run of torch (tiny-mlp, float64) no longer reproduces: step 0 differs (loss); recomputed" in err
    assert len(err.strip().splitlines()) == 1  # the other cached runs reproduce
    assert json_without_timings(tmp_path / "verified.json") == json_without_timings(tmp_path / "cold.json")
    assert main(run) == 0  # the entry was replaced by the run made again

    doctor(_entry_paths(cache, "keras")[0])
    assert main(["cache", "verify", "--cache", str(cache)]) == 1
    out = capsys.readouterr().out
    assert "cached run of keras (tiny-mlp, float64) no longer reproduces: step 0 differs (loss); evicted" in out
    assert "1 no longer reproduce (evicted)" in out
    assert main(["cache", "verify", "--cache", str(cache)]) == 0
    assert "made here: all reproduce" in capsys.readouterr().out


@pytest.mark.slow
def test_cache_verify_finds_every_clean_run_reproduces_shuffled_minibatches_and_momentum_too(tmp_path, capsys):
    """The check run (the plan cut after 2 steps) gives the full run's first steps bitwise, in every
    implementation, with shuffled minibatches and an optimizer state."""
    cache = tmp_path / "cache"
    assert main(["run", "minibatch-nesterov", "--frameworks", "all", "--dtype", "float64", "--jobs", "2", "--quiet",
                 "--cache", str(cache)]) in (0, 1)
    capsys.readouterr()
    assert main(["cache", "verify", "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "all reproduce" in out and "verified 0 runs" not in out


@pytest.mark.slow
def test_a_monkeypatched_process_never_reads_or_writes_the_cache(tmp_path, monkeypatch):
    """Under inline() a framework class may be patched: its run must not come from, or go to, the cache."""
    [s] = load_scenarios(TINY)
    with use_cache(tmp_path):
        clean = run_scenario(s, frameworks=("numpy", "torch"), dtypes=("float64",))
        assert clean.ok
        entries = sorted(tmp_path.rglob("*.npz"))
        with inline():
            monkeypatch.setattr(torch.nn.Sigmoid, "forward", lambda self, x: torch.sigmoid(x) * (1 + 1e-6))
            patched = run_scenario(s, frameworks=("numpy", "torch"), dtypes=("float64",))
        assert not patched.ok  # the patched torch really ran: a cached clean run would pass
        assert sorted(tmp_path.rglob("*.npz")) == entries


def test_the_key_sees_every_change_of_the_plan(tmp_path):
    [s] = load_scenarios(TINY)
    plan = make_plan(s, "float64")
    other_lr = make_plan(replace(s, training=replace(s.training, optimizer=replace(s.training.optimizer,
                                                                                   learning_rate=0.11))), "float64")
    k = key("torch", "run", plan)
    assert k == key("torch", "run", make_plan(s, "float64"))
    assert k != key("keras", "run", plan) and k != key("torch", "run", make_plan(s, "float32"))
    assert k != key("torch", "run", other_lr) and k != key("torch", "trace_step", plan, 1)
    assert k != key("torch", "run", replace(plan, scenario=replace(s, keep_64_bit=True)))  # a control run
    assert k != key("torch", "run", plan.first_steps(2))  # a check run
    bumped = {**plan.initial_params, "layers.0.bias": plan.initial_params["layers.0.bias"] + 1e-16}
    assert k != key("torch", "run", replace(plan, initial_params=bumped))


@pytest.mark.parametrize("name", ["tanh-adam", "minibatch-nesterov", "calculate-z-example", "bce-clip-binds-torch",
                                  "rmsprop-options"])
def test_an_entry_holds_enough_to_rebuild_its_plan(name):
    """``cache verify`` remakes a run from its entry alone: the rebuilt plan has the same key (the
    same description, arrays and order), for pinned conventions and control runs too."""
    scenario = resolve(name)
    plans = [make_plan(scenario, dtype) for dtype in ("float64", "float32")]
    plans.append(replace(plans[0], scenario=replace(scenario, keep_64_bit=True)))
    if scenario.training is not None:
        options = {**scenario.training.optimizer.options, "convention": COMMON}
        pinned = replace(scenario, training=replace(scenario.training, optimizer=replace(
            scenario.training.optimizer, options=options)))
        plans += [side_plan(plans[0], pinned), plans[0].first_steps(2)]
    for plan in plans:
        rebuilt = plan_from(*describe_plan(plan))
        assert key("torch", "run", rebuilt) == key("torch", "run", plan)
        assert rebuilt.max_steps == plan.max_steps
        assert all(np.array_equal(rebuilt.batch_indices(t), plan.batch_indices(t)) for t in range(plan.max_steps))


def _same(a: object, b: object) -> bool:
    """Bitwise equality of values as the cache keeps them (arrays: dtype, shape, order and bytes)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape  # type: ignore[union-attr]
                and a.flags.f_contiguous == b.flags.f_contiguous and a.tobytes("A") == b.tobytes("A"))  # type: ignore
    if isinstance(a, np.generic):
        return type(a) is type(b) and a.tobytes() == b.tobytes()  # type: ignore[union-attr]
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))  # type: ignore
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, Trajectory):
        return type(b) is Trajectory and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, float):
        return type(b) is float and a.hex() == b.hex()
    return type(a) is type(b) and a == b


def test_entries_round_trip_bitwise(tmp_path):
    run = run_framework("numpy", make_plan(resolve("minibatch-bad-init"), "float32"))
    rows = np.arange(10_000, dtype=np.int64)
    assert run.ok and run.batch_rows and run.stopped_early_at is not None
    odd = {"nan payload": np.array([np.nan, -0.0, np.inf], dtype=np.float64).view(np.uint64) | np.uint64(1),
           "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "empty": np.zeros((0, 3), np.float32),
           "0-d": np.array(2.5, dtype=np.float32), "scalar": np.float32(0.1), "bools": np.array([True, False]),
           "ints": np.array([-(2 ** 62)], dtype=np.int64), "text": "é\n", "none": None, "big int": 2 ** 70,
           "float": -0.0, "list": [np.ones(2), None, (1, "a")], "nested": {"b": {"a": [1.5e-320]}},
           "packed": [rows, rows, rows[:3], np.zeros(0, np.int64)], "not packed": [np.ones((2, 2), order="F"), rows]}
    values = {"run": run, "trace": {"params layers.0.kernel": np.ones((2, 3)), "loss": np.array(0.25)},
              "figure": (b"\x89PNG\r\n\x00",), "no figure": (None,), "odd": odd,
              "no steps": replace(run, losses=np.zeros(0, np.float32), params={}, grads={}, batch_rows=[],
                                  stopped_early_at=None, seconds=0.1)}
    cache = RunCache(tmp_path)
    for i, value in enumerate(values.values()):
        cache.put(f"{i:064x}", value)
    for i, (name, value) in enumerate(values.items()):
        assert _same(cache.get(f"{i:064x}"), value), name
    packed = cache.get(f"{list(values).index('odd'):064x}")["packed"]
    assert packed[0] is packed[1]  # one array repeated (a full-batch run's rows at every step) stays one
    assert cache._path(f"{list(values).index('odd'):064x}").stat().st_size < 3 * rows.nbytes
    assert not list(tmp_path.rglob("*.pickle")) and not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(TypeError):  # only data: an object the cache does not know is refused, never pickled
        cache.put("f" * 64, {"x": object()})


class Planted:
    """A pickle whose unpickling creates a marker file (what a pickle in a shared folder could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.open, (str(self.marker), "w")


def _hangs(call, seconds: float = 120) -> bool:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    return thread.is_alive()


def test_a_bad_entry_is_ignored_and_replaced_never_served_never_unpickled(tmp_path):
    plan = tiny_plan()
    k = key("numpy", "run", plan)
    with use_cache(tmp_path) as cache:
        assert isinstance(cache, RunCache)
        first = run_framework("numpy", plan)
        path = cache._path(k)
        good = path.read_bytes()
        assert isinstance(cache.get(k), Trajectory)
        marker = tmp_path / "unpickled"
        other = tmp_path / "other.npz"
        np.savez(other, losses=np.zeros(3))  # a valid .npz, not an entry
        foreign_key = io.BytesIO()
        with zipfile.ZipFile(foreign_key, "w") as archive:  # an entry of another key, renamed
            archive.writestr(META, json.dumps({"format": "nn-parity-cache 2", "key": "0" * 64, "value": None}))
        bad = {"truncated": good[: len(good) // 2], "corrupt": good[:200] + bytes(64) + good[264:],
               "empty": b"", "foreign npz": other.read_bytes(), "another key": foreign_key.getvalue(),
               "old format": b"nn-parity-cache 1", "pickle": pickle.dumps(Planted(marker)),
               "compressed": _compressed(good)}
        for name, data in bad.items():
            path.write_bytes(data)
            again = run_framework("numpy", plan)
            assert again.ok and np.array_equal(again.losses, first.losses), name
            replaced = cache.get(k)  # replaced by the run made again
            assert isinstance(replaced, Trajectory) and np.array_equal(replaced.losses, first.losses), name
        path.with_suffix(".pickle").write_bytes(pickle.dumps(Planted(marker)))  # the old format's name
        assert run_framework("numpy", plan).ok
        assert not marker.exists()

        path.unlink()
        path.mkdir()  # a folder where the entry goes: skipped, never opened; the run is made
        (path / "x").write_text("x")
        assert run_framework("numpy", plan).ok and path.is_dir()
        path.rename(tmp_path / "moved")
        os.mkfifo(path)  # a FIFO: opening it would block the run for ever
        results: list[Trajectory] = []
        assert not _hangs(lambda: results.append(run_framework("numpy", plan)))
        assert results[0].ok and cache.get(k) is not None  # the FIFO was replaced by the entry


def _compressed(good: bytes) -> bytes:
    """The same entry with deflated members (ours are stored: a compressed one is refused unread)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info.filename, source.read(info.filename))
    return out.getvalue()


@pytest.mark.parametrize("folder", ["file", "/dev/null", "", "file/inside"])
@pytest.mark.parametrize("named_by", ["--cache", "$NN_PARITY_CACHE"])
def test_a_cache_folder_that_cannot_be_one_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, folder, named_by):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.chdir(tmp_path)
    options = ["--cache", folder] if named_by == "--cache" else []
    if named_by != "--cache":
        monkeypatch.setenv("NN_PARITY_CACHE", folder)
    for command in (["run", str(TINY), "--frameworks", "numpy", "--quiet", *options], ["cache", "info", *options]):
        assert main(command) == 2
        out, err = capsys.readouterr()
        [line] = err.strip().splitlines()
        assert line.startswith(f"nn-parity: error: {named_by}") and "expected a folder" in line, line
    assert (tmp_path / "file").read_text() == "not a folder"


def test_a_missing_cache_folder_is_made_and_no_cache_ignores_a_bad_one(tmp_path, capsys):
    folder = tmp_path / "new" / "cache"
    assert main(["run", str(TINY), "--frameworks", "numpy", "--dtype", "float64", "--quiet", "--cache",
                 str(folder)]) == 0
    assert len(list(folder.rglob("*.npz"))) == 1
    assert main(["run", str(TINY), "--frameworks", "numpy", "--dtype", "float64", "--quiet", "--cache", "",
                 "--no-cache"]) == 0


def test_cache_info_and_clear_touch_only_the_cache_files(tmp_path, capsys):
    folder = tmp_path / "cache"
    assert main(["run", str(TINY), "--frameworks", "numpy", "--quiet", "--cache", str(folder)]) == 0
    entries = sorted(folder.rglob("*.npz"))
    assert len(entries) == 2
    (folder / "notes.txt").write_text("mine")
    (entries[0].parent / "keep.txt").write_text("mine too")
    (entries[0].parent / ("a" * 64 + ".pickle")).write_bytes(b"old")  # not under its own prefix: not ours
    old = entries[1].parent / (entries[1].parent.name + "0" * 62 + ".pickle")
    old.write_bytes(b"format 1")
    capsys.readouterr()
    assert main(["cache", "info", "--cache", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"folder: {folder}" in out and "entries: 2 (2 runs, 0 traced steps, 0 figures)" in out
    assert "environments: 1" in out and "(this one): 2 entries" in out and "1 entries of the old format" in out
    assert main(["cache", "clear", "--cache", str(folder)]) == 0
    assert "removed 3 files" in capsys.readouterr().out
    assert not list(folder.rglob("*.npz")) and not old.exists()
    assert (folder / "notes.txt").read_text() == "mine" and (entries[0].parent / "keep.txt").exists()
    assert (entries[0].parent / ("a" * 64 + ".pickle")).exists()
    assert main(["cache", "info", "--cache", str(tmp_path / "none")]) == 0
    assert "no entries" in capsys.readouterr().out and not (tmp_path / "none").exists()


def test_a_figure_is_drawn_once_for_the_same_numbers(tmp_path):
    """The report's figures come from the run cache when every number they show is the same; a
    changed number, or no cache, draws again."""
    result = run_scenario(load_scenarios(TINY)[0], frameworks=("numpy",), dtypes=("float64",))
    calls = []

    def loss_curves_png(r):
        calls.append(r)
        return b"png %d" % len(calls)

    with use_cache(tmp_path):
        assert drawn(loss_curves_png, result) == drawn(loss_curves_png, result) == b"png 1"
        assert len(calls) == 1
        run = result.runs[("numpy", "float64")]
        changed = replace(result, runs={("numpy", "float64"): replace(run, losses=run.losses * (1 + 1e-15))})
        assert drawn(loss_curves_png, changed) == b"png 2"
    assert drawn(loss_curves_png, result) == b"png 3"  # without a cache: drawn


def test_the_installed_files_fingerprint_sees_an_edited_file_but_not_a_header(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "fakefw").mkdir(parents=True)
    (site / "fakefw" / "__init__.py").write_text("SCALE = 1.0\n")
    (site / "fakefw" / "ops.h").write_text("// header\n")
    info = site / "fakefw-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakefw\nVersion: 1.0\n")
    (info / "RECORD").write_text("fakefw/__init__.py,,\nfakefw/ops.h,,\nfakefw-1.0.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(site))
    before = environment.installed_files("fakefw")
    (site / "fakefw" / "ops.h").write_text("// another header\n")
    assert environment.installed_files("fakefw") == before
    (site / "fakefw" / "__init__.py").write_text("SCALE = 2.0\n")  # the same size: its mtime tells
    os.utime(site / "fakefw" / "__init__.py", ns=(1, 1))
    assert environment.installed_files("fakefw") != before
    assert environment.installed_files("not-installed-anywhere") == "absent"


def test_a_framework_shadowed_on_pythonpath_is_seen(tmp_path):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    code = "from harness.run.environment import module_origins; print(module_origins()['torch'])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          timeout=120)
    assert done.stdout.strip() == str(tmp_path / "torch" / "__init__.py")


IMPORTED = """
import json, sys
from harness.run import environment

def described():
    environment.describe.cache_clear()
    return environment.numeric_variables(), environment.fingerprint.__wrapped__()

before = described()
import keras  # on the backend $KERAS_BACKEND names
for name in sys.argv[1:]:
    __import__(name)
keras.ops.convert_to_numpy(keras.ops.ones(2) + 1)  # the backend initialised and computing
after = described()
print(json.dumps({"before": before, "after": after}))
"""


@pytest.mark.slow  # two processes importing every framework
@pytest.mark.parametrize("backend, frameworks", [("jax", ["tensorflow", "jax"]), ("torch", ["torch"])])
def test_importing_the_frameworks_for_real_leaves_the_environment_as_described(backend, frameworks):
    """A process describes the same environment, and so makes the same cache keys, after it imported
    Keras, TensorFlow, JAX and torch and computed with them as before (TensorFlow sets TPU_ML_PLATFORM
    at import: CI failed when a cache test ran in a pytest worker that had imported TensorFlow)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", IMPORTED, *frameworks], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    (variables, fingerprint), (variables_after, fingerprint_after) = seen["before"], seen["after"]
    assert variables_after == variables, {k: v for k, v in variables_after.items() if variables.get(k) != v}
    assert fingerprint_after == fingerprint


def test_what_importing_jax_sets_in_its_own_process_is_not_the_environment(monkeypatch):
    """JAX sets TPU_SKIP_MDS_QUERY when it is imported: a process that imported jax (a test, a keras@jax
    worker) describes the same environment, and so the same cache keys, as one that did not (a cache
    test failed under xdist after another test in its worker had imported jax)."""
    monkeypatch.delenv("TPU_SKIP_MDS_QUERY", raising=False)
    before = environment.numeric_variables()
    monkeypatch.setenv("TPU_SKIP_MDS_QUERY", "1")
    assert environment.numeric_variables() == before
    monkeypatch.setenv("TPU_NAME", "a-tpu")  # any other TPU_ variable selects hardware: still named
    assert environment.numeric_variables() != before
