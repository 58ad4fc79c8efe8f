"""The fuzz campaign engine: ``--time``, per-example seeds (example i a function of the seed and i
only), ``--jobs`` and ``--executor ray`` giving the same bytes, ``--replay``, the earlier findings
judged first, the index, the progress on stderr."""
from __future__ import annotations

import importlib.metadata
import io
import json
import platform
import subprocess
import sys
from pathlib import Path
from random import Random

import pytest
from hypothesis import find
from hypothesis.errors import HypothesisException
from hypothesis.strategies import just

from harness.commands.args import duration
from harness.commands.cli import main
from harness.fuzz import batch as batch_module
from harness.fuzz import campaign as campaign_module
from harness.fuzz.campaign import GUIDED, SEEDED, Campaign, Record
from harness.fuzz.draw import TRIES, derived_seed, draw, search_settings
from harness.fuzz.fingerprint import Fingerprint
from harness.fuzz.index import write_index
from harness.fuzz.output import finding_versions, summary, write_findings
from harness.fuzz.progress import Bar, Lines, Silent, reporter_for
from harness.fuzz.space import Example, examples
from harness.fuzz.space_file import read_space
from harness.fuzz.toml_text import to_toml
from harness.run.adapters import workers
from tests.test_fuzz import plant_reference_sigmoid_derivative

ROOT = Path(__file__).resolve().parent.parent
TIMINGS = ("seconds", "examples_per_hour", "shrink_seconds")


def without_timings(path: Path) -> object:
    def strip(data: object) -> object:
        if isinstance(data, dict):
            return {k: strip(v) for k, v in data.items() if k not in TIMINGS}
        return [strip(v) for v in data] if isinstance(data, list) else data
    return strip(json.loads(path.read_text()))


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".hypothesis" not in p.parts}


def test_durations_take_a_unit_and_bad_ones_are_one_line(capsys) -> None:
    assert [duration(t) for t in ("90s", "10m", "1h", "45", "1.5m")] == [90, 600, 3600, 45, 90]
    for bad in ("0s", "-5m", "10x", "m", "", "8d", "1e3"):
        assert main(["fuzz", f"--time={bad}"]) == 2, bad
    assert main(["fuzz", "--time", "1m", "--examples", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("expected a positive duration such as 90s, 10m or 1h") == 7
    assert "not allowed with argument" in err and "Traceback" not in err
    assert all(line.startswith("nn-parity fuzz: error:") for line in err.splitlines())


DRAW_IN_A_FRESH_PROCESS = """
import sys
from harness.fuzz.draw import draw
from harness.fuzz.space import examples
from harness.fuzz.toml_text import to_toml
for i in (3, 1, 0):  # another order, nothing else imported first
    sys.stdout.write(to_toml(draw(examples(), 7, i).raw) + "\\x00")
"""


def test_example_i_is_a_function_of_the_seed_and_i_only() -> None:
    """Drawn here (after the test suite imported what it did), in another order, and in a fresh
    interpreter: the same scenario text; other indices and seeds, other scenarios."""
    here = {i: to_toml(draw(examples(), 7, i).raw) for i in (0, 1, 2, 3)}
    assert to_toml(draw(examples(), 7, 1).raw) == here[1]
    fresh = subprocess.run([sys.executable, "-c", DRAW_IN_A_FRESH_PROCESS], capture_output=True, text=True,
                           check=True, cwd=ROOT, timeout=300).stdout.split("\x00")[:3]
    assert fresh == [here[3], here[1], here[0]]
    assert len(set(here.values())) == 4
    assert to_toml(draw(examples(), 8, 1).raw) != here[1]


def test_example_i_is_the_value_find_reaches_with_its_seed() -> None:
    """``draw`` is ``find``'s seeded search without its replay: example i is the second value
    ``find(..., random=Random(derived_seed(seed, i)))`` tries (the shrink pass reaches it again that
    way); a strategy with fewer values than that is refused, as ``find`` refuses it."""
    strategy = examples()
    for i in (0, 1, 5):
        tried: list[Example] = []

        def second(value: Example) -> bool:
            tried.append(value)
            return len(tried) >= TRIES

        found = find(strategy, second, settings=search_settings(), random=Random(derived_seed(11, i)))
        assert to_toml(draw(strategy, 11, i).raw) == to_toml(found.raw)
    with pytest.raises(HypothesisException):
        draw(just(1), 11, 0)


def _campaign(out: Path, summary: Path, *extra: str) -> int:
    return main(["fuzz", "--frameworks", "numpy,torch", "--dtype", "float64", "--examples", "8", "--seed", "2",
                 "--out", str(out), "--json", str(summary), "--quiet", *extra])


@pytest.mark.slow
def test_jobs_2_writes_the_same_summary_findings_and_index_as_jobs_1(tmp_path: Path, monkeypatch) -> None:
    """A planted reference defect, so that there are findings to shrink; the shrinks end on their
    count of candidates (deterministic), not on their seconds."""
    plant_reference_sigmoid_derivative(monkeypatch)
    monkeypatch.setattr(campaign_module, "SHRINK_CANDIDATES", 12)
    monkeypatch.setattr(campaign_module, "SHRINK_SECONDS", 3600.0)
    codes = [_campaign(tmp_path / f"jobs{j}", tmp_path / f"jobs{j}.json", "--jobs", str(j)) for j in (1, 2)]
    one, two = (without_timings(tmp_path / f"jobs{j}.json") for j in (1, 2))
    assert codes == [1, 1] and one == two
    assert isinstance(one, dict) and one["findings"] and one["phases"] == {GUIDED: 2, SEEDED: 6}
    assert folder_bytes(tmp_path / "jobs1") == folder_bytes(tmp_path / "jobs2")
    assert {"index.md", "index.json"} <= set(folder_bytes(tmp_path / "jobs1"))


@pytest.mark.slow
def test_ray_writes_the_same_summary_and_files_as_the_local_workers(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'nn-parity[ray]')")
    try:
        codes = [_campaign(tmp_path / e, tmp_path / f"{e}.json", "--executor", e, "--jobs", "2")
                 for e in ("local", "ray")]
    finally:
        ray.shutdown()
    assert codes[0] == codes[1]
    assert without_timings(tmp_path / "local.json") == without_timings(tmp_path / "ray.json")
    assert folder_bytes(tmp_path / "local") == folder_bytes(tmp_path / "ray")


SIGMOID_FINDING = """title = "fuzz finding: numpy / gradient kernel / kernel / float64 / activation derivative"

[data]
X = [[0.5, -1.0], [1.5, 0.25], [-0.75, 1.0]]
y = [[0.2], [0.9], [0.4]]

[model]
input_dim = 2

[[model.layers]]
units = 1
activation = "sigmoid"
kernel = [[0.3], [-0.2]]
bias = [0.1]

[training]
loss = "mse"
optimizer = { name = "sgd", learning_rate = 0.5 }
epochs = 3
"""


def _finding_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "earlier"
    (folder / "findings").mkdir(parents=True)
    (folder / "findings" / "numpy-sigmoid.toml").write_text("name = \"fuzz-numpy-sigmoid\"\n" + SIGMOID_FINDING)
    return folder


@pytest.mark.slow
def test_replay_runs_only_the_saved_findings_and_names_those_still_found(tmp_path: Path, monkeypatch,
                                                                        capsys) -> None:
    folder = _finding_folder(tmp_path)
    args = ["fuzz", "--replay", str(folder), "--frameworks", "numpy,keras,torch", "--dtype", "float64",
            "--json", str(tmp_path / "replay.json")]
    assert main(args) == 0  # the unmodified implementations agree on it: no longer found
    assert "no longer found: findings/numpy-sigmoid.toml: ok" in capsys.readouterr().out
    plant_reference_sigmoid_derivative(monkeypatch)  # the regression comes back
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "still found: findings/numpy-sigmoid.toml: numpy / " in out and "1 of 1 saved findings still found" in out
    [entry] = json.loads((tmp_path / "replay.json").read_text())["replayed"]
    assert entry["file"] == "findings/numpy-sigmoid.toml" and entry["still_found"]
    assert entry["saved"] == "numpy / gradient kernel / kernel / float64 / activation derivative"
    assert any(fp.startswith("numpy / ") for fp in entry["fingerprints"])


def test_replay_of_a_bad_folder_or_file_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["fuzz", "--replay", str(tmp_path / "nowhere")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["fuzz", "--replay", str(tmp_path / "empty")]) == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.toml").write_text('name = "x"\n' + SIGMOID_FINDING.replace('units = 1', 'units = "one"'))
    assert main(["fuzz", "--replay", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "Traceback" not in "".join(err)
    assert "no such folder" in err[0] and "finding files" in err[1]
    assert "x.toml: model.layers[0].units" in err[2]


@pytest.mark.slow
def test_a_second_campaign_judges_the_earlier_findings_first(tmp_path: Path, monkeypatch) -> None:
    folder = _finding_folder(tmp_path)
    plant_reference_sigmoid_derivative(monkeypatch)
    monkeypatch.setattr(campaign_module, "SHRINK_CANDIDATES", 3)
    code = main(["fuzz", "--frameworks", "numpy,torch", "--dtype", "float64", "--examples", "1", "--seed", "4",
                 "--out", str(folder), "--json", str(tmp_path / "s.json"), "--quiet"])
    data = json.loads((tmp_path / "s.json").read_text())
    assert code == 1 and data["phases"]["replayed"] == 1 and data["phases"][SEEDED] == 1
    assert any(f["origin"] == "replayed example 0" and f["cause"] == "activation derivative" for f in data["findings"])


def _record(suspect: str, cause: str, count: int) -> Record:
    drawn = Example(raw={"name": "fuzz-example", "data": {"X": [[1.0]], "y": [[0.5]]},
                         "model": {"input_dim": 1, "layers": [{"units": 1, "kernel": [[0.0]]}]},
                         "training": {"loss": "mse", "optimizer": {"name": "sgd", "learning_rate": 0.1},
                                      "epochs": 1}}, families=())
    return Record(Fingerprint(suspect, "gradient kernel", "kernel", "float64", cause), drawn, count=count)


def test_the_index_groups_findings_by_cause_and_by_suspect_one_exemplar_each(tmp_path: Path) -> None:
    campaign = Campaign(frameworks=("numpy", "keras", "torch"), dtypes=("float64",), seed=3, out=tmp_path,
                        max_examples=10)
    for r in (_record("numpy", "activation derivative", 4), _record("torch", "unknown", 2),
              _record("numpy", "<script>alert(1)</script>", 1)):
        campaign.records[r.fingerprint] = r
    campaign.examples = 10
    write_index(campaign, html=True)
    data = json.loads((tmp_path / "index.json").read_text())
    assert sorted(data["by_suspect"]) == ["numpy", "torch"]
    assert [e["count"] for e in data["by_suspect"]["numpy"]] == [1, 4]
    assert sorted(data["by_cause"]) == ["<script>alert(1)</script>", "activation derivative", "unknown"]
    assert data["by_cause"]["unknown"][0]["file"] == "findings/torch-gradient-kernel-kernel-float64-unknown.toml"
    text = (tmp_path / "index.md").read_text()
    assert "## By cause" in text and "## By suspect" in text and "### numpy (5 examples)" in text
    page = (tmp_path / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert str(tmp_path) not in text + page + json.dumps(data)


def test_each_finding_records_the_versions_of_the_packages_that_produced_it(tmp_path: Path) -> None:
    """The finding file's description, its --json entry and the index name the installed versions
    of the packages the campaign's implementations computed with, and only those."""
    campaign = Campaign(frameworks=("numpy", "torch"), dtypes=("float64",), seed=3, out=tmp_path, max_examples=10)
    r = _record("torch", "unknown", 2)
    campaign.records[r.fingerprint] = r
    write_findings(campaign)
    write_index(campaign)
    expected = {"python": platform.python_version(), "numpy": importlib.metadata.version("numpy"),
                "torch": importlib.metadata.version("torch")}
    [entry] = summary(campaign)["findings"]
    assert entry["versions"] == expected
    assert json.loads((tmp_path / "index.json").read_text())["by_suspect"]["torch"][0]["versions"] == expected
    text = (tmp_path / entry["file"]).read_text()
    assert f"found with: python {expected['python']}, numpy {expected['numpy']}, torch {expected['torch']}" in text
    assert "keras" not in json.dumps(entry["versions"]) and "found with" in (tmp_path / "index.md").read_text().lower()


def test_a_keras_on_jax_finding_records_scipy_which_its_worker_loads() -> None:
    """Keras on JAX imports scipy.linalg (SciPy's OpenBLAS is loaded in its worker): a finding of it names
    SciPy's version beside JAX's; a campaign without it names neither."""
    found = finding_versions(("numpy", "keras@jax"))
    assert {name: found.get(name) for name in ("jax", "jaxlib", "scipy")} == \
        {name: importlib.metadata.version(name) for name in ("jax", "jaxlib", "scipy")}
    assert not {"scipy", "jax"} & set(finding_versions(("numpy", "torch")))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_lines_in_a_log_and_nothing_when_quiet(tmp_path: Path) -> None:
    campaign = Campaign(frameworks=("numpy",), dtypes=("float64",), seed=0, out=tmp_path, max_examples=4)
    terminal, log = Terminal(), io.StringIO()
    assert isinstance(reporter_for(quiet=True, stream=terminal), Silent)
    assert type(reporter_for(quiet=False, stream=log)) is Lines
    with reporter_for(quiet=False, stream=terminal) as bar:
        assert isinstance(bar, Bar)
        r = _record("numpy", "unknown", 1)
        campaign.records[r.fingerprint] = r
        campaign.examples = 1
        bar.example(campaign, "finding: ...")
    assert "1/4" in terminal.getvalue() and "1 findings" in terminal.getvalue()
    assert "examples/s" in terminal.getvalue()
    with reporter_for(quiet=False, stream=log) as lines:
        lines.example(campaign, "ok")
    assert log.getvalue() == "example 1/4: ok\n"


NARROW = """frameworks = ["numpy", "keras@jax"]
dtype = "float64"

[data]
rows = 4
families = []

[[model.layers]]
units = 2
activation = "tanh"

[[model.layers]]
units = 1
activation = "sigmoid"

[training]
loss = ["binary_crossentropy", "categorical_crossentropy"]
shuffle = false
max_steps = 12
forward_only = false

[training.optimizer]
name = "adam"
learning_rate = [0.01, 0.1]
amsgrad = true
convention = "none"
"""


def test_a_space_file_narrows_the_draw_in_the_formats_words(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text(NARROW)
    space, frameworks, dtypes = read_space(path)
    assert frameworks == ("numpy", "keras@jax") and dtypes == ("float64",)
    assert space.loss == ("binary_crossentropy",)  # categorical cannot train a sigmoid output
    strategy = examples(frameworks, space)
    for i in range(25):
        example = draw(strategy, 11, i)
        scenario = example.scenario()
        raw = example.raw
        assert [(layer.units, layer.activation) for layer in scenario.layers] == [(2, "tanh"), (1, "sigmoid")]
        assert scenario.data.X.shape[0] == 4 and example.families == ()
        assert raw["training"]["optimizer"]["name"] == "adam" and raw["training"]["optimizer"]["amsgrad"] is True
        assert "convention" not in raw["training"]["optimizer"]
        assert raw["training"]["optimizer"]["learning_rate"] in (0.01, 0.1)
        assert raw["training"]["loss"] == "binary_crossentropy" and not raw["training"].get("shuffle")
        assert scenario.max_steps <= 12


def test_a_space_file_widens_the_draw_beyond_the_default(tmp_path: Path) -> None:
    path = tmp_path / "wide.toml"
    path.write_text("[model]\nlayers = [4]\nunits = [5, 6, 7, 8]\n[training]\nloss = \"mse\"\n")
    space, _, _ = read_space(path)
    strategy = examples(("numpy", "keras", "torch"), space)
    drawn = [draw(strategy, 0, i).scenario() for i in range(15)]
    assert all(len(s.layers) == 4 for s in drawn)
    assert all(5 <= layer.units <= 8 for s in drawn for layer in s.layers[:-1])


@pytest.mark.parametrize("text, field, expected", [
    ("optimiser = 1\n", "optimiser", "one of the known fields"),
    ("[training.optimizer]\nname = \"adamw\"\n", "training.optimizer.name", "one of ['sgd', 'adam', 'rmsprop']"),
    ("[model]\nunits = [1, 99]\n", "model.units", "an integer from 1 to 8"),
    ("[model]\nunits = []\n", "model.units", "a non-empty list"),
    ("dtype = \"float16\"\n", "dtype", "one of ['float64', 'float32', 'both']"),
    ("frameworks = [\"jax\"]\n", "frameworks", "an implementation of"),
    ("[training.optimizer]\nlearning_rate = -1\n", "training.optimizer.learning_rate", "a learning rate in (0, 10]"),
    ("[[model.layers]]\nunits = 1\nactivation = \"tanh\"\n[training]\nloss = \"binary_crossentropy\"\n",
     "training.loss", "a loss valid for the last layer's tanh"),
    ("[[model.layers]]\nunits = 1\nactivation = \"softmax\"\n", "model.layers[0].units", "at least 2 units"),
    ("[training]\nmax_steps = 0\n", "training.max_steps", "an integer >= 1"),
    ("[data\n", "", "TOML"),
    # the fields that narrow what is drawn (tests/test_fuzz_space.py)
    ("[training]\nearly_stop_tol = 2\n", "training.early_stop_tol", '"none" or a tolerance in (0, 1)'),
    ("[training]\nforward_only = \"yes\"\n", "training.forward_only", "true or false"),
    ("[model]\ninitializer = \"he_normal\"\n", "model.initializer", "one of ['explicit', 'zeros'"),
    ("[model]\naxis = 1\n", "model.axis", "a softmax axis of [-1, 0]"),
])
def test_a_bad_space_file_is_one_line_naming_file_and_field(tmp_path: Path, capsys, text: str, field: str,
                                                            expected: str) -> None:
    path = tmp_path / "space.toml"
    path.write_text(text)
    assert main(["fuzz", "--space", str(path), "--examples", "1", "--out", str(tmp_path / "out")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"nn-parity: error: {path}: {field}") and expected in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_worker_grown_past_its_share_of_the_budget_is_started_afresh_with_the_same_results() -> None:
    """The torch worker (a real process) holds more than its share of a small budget after a batch:
    it is ended, the next batch starts a fresh one, and the outcomes are those of a worker kept."""
    drawn = [draw(examples(("numpy", "torch")), 5, i) for i in range(3)]
    kept = batch_module.judge_all(drawn, frameworks=("numpy", "torch"), dtypes=("float64",))
    first = workers.worker("torch").process.pid
    again = batch_module.judge_all(drawn, frameworks=("numpy", "torch"), dtypes=("float64",), max_bytes=4 * 2**20)
    assert "torch" not in workers.resident_bytes()  # recycled: a worker holds far more than 4 MiB / 8
    assert again == kept
    batch_module.judge_all(drawn[:1], frameworks=("numpy", "torch"), dtypes=("float64",))
    assert workers.worker("torch").process.pid != first


def test_the_guided_phase_targets_the_tolerance_used_and_is_reproducible(tmp_path: Path, monkeypatch) -> None:
    """numpy against itself in two conventions is all the runs it needs; every guided example calls
    hypothesis.target() (the real one) on the worst fraction of the tolerance used."""
    seen: list[tuple[str, float]] = []
    real = campaign_module.target

    def recorded(value: float, *, label: str) -> None:
        seen.append((label, value))
        real(value, label=label)

    monkeypatch.setattr(campaign_module, "target", recorded)
    runs = []
    for _ in range(2):
        c = Campaign(frameworks=("numpy",), dtypes=("float64",), seed=9, out=tmp_path, max_examples=12)
        c.search()
        runs.append((dict(c.phases), sorted(c.memo)))
    assert runs[0] == runs[1] and runs[0][0] == {SEEDED: 9, GUIDED: 3}
    assert [label for label, _ in seen].count(campaign_module.WORST_LABEL) == 6  # 3 guided examples, twice
