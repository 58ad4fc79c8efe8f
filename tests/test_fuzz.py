"""``nn-parity fuzz``: the space only draws valid scenario files, the oracle is the harness's own
verdict, a campaign on the unmodified frameworks reports nothing, and a planted defect is found,
named by its carrier, shrunk, and its file re-runs to the same fingerprint."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from harness.commands.cli import main
from harness.fuzz import campaign as campaign_module
from harness.fuzz.families import FAMILIES
from harness.fuzz.fingerprint import Fingerprint, kind
from harness.fuzz.oracle import FINDING, judge_example
from harness.fuzz.space import MAX_LAYERS, MAX_ROWS, MAX_STEPS, MAX_UNITS, Example, examples
from harness.fuzz.toml_text import to_toml
from harness.spec.fields import read_toml
from harness.spec.scenario import load_scenarios
from reference import activations


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(example=examples())
def test_every_drawn_example_is_a_valid_scenario_file_within_the_space(example: Example, tmp_path: Path) -> None:
    path = tmp_path / "drawn.toml"
    path.write_text(to_toml(example.raw), encoding="utf-8")
    [scenario] = load_scenarios(path)  # the real loader validates it
    assert read_toml(path, what="scenario file") == example.raw  # the text says exactly what was drawn
    assert 1 <= len(scenario.layers) <= MAX_LAYERS
    assert all(1 <= layer.units <= MAX_UNITS for layer in scenario.layers)
    assert 1 <= scenario.data.X.shape[0] <= MAX_ROWS
    assert (scenario.training is None) == (scenario.max_steps == 0) and scenario.max_steps <= MAX_STEPS
    assert set(example.families) <= set(FAMILIES)


def test_fingerprints_leave_out_layer_indices_and_slug_to_file_names() -> None:
    assert kind("gradient layers.1.kernel") == "gradient kernel"
    assert kind("output layers.0") == "output"
    assert kind("loss") == "loss"
    fp = Fingerprint("numpy", "gradient kernel", "kernel", "float64", "activation derivative")
    assert fp.slug() == "numpy-gradient-kernel-kernel-float64-activation-derivative"


def _sigmoid_grad_as_tanh(z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
    return grad_a * (1 - a * a)  # copy-pasted from tanh: S'(z) is a (1 - a)


def plant_reference_sigmoid_derivative(mp: pytest.MonkeyPatch) -> None:
    """As tests/test_planted_defects.py plants it: the reference's sigmoid derivative is tanh's."""
    mp.setitem(activations.ACTIVATIONS, "sigmoid",
               replace(activations.ACTIVATIONS["sigmoid"], backward=_sigmoid_grad_as_tanh))


@pytest.mark.slow
def test_a_short_campaign_writes_its_summary_and_exits_by_its_findings(tmp_path: Path, capsys, monkeypatch) -> None:
    """On the unmodified frameworks. Not "finds nothing" (a real difference of arithmetic, or a genuine
    unknown, may be found: docs/fuzz.md); whatever is found must be said, counted, written as a
    loadable file and give exit 1."""
    monkeypatch.setattr(campaign_module, "SHRINK_SECONDS", 5.0)
    summary, out = tmp_path / "fuzz.json", tmp_path / "out"
    code = main(["fuzz", "--frameworks", "numpy,torch", "--examples", "6", "--seed", "3",
                 "--out", str(out), "--json", str(summary), "--quiet"])
    data = json.loads(summary.read_text())
    assert code == (1 if data["findings"] else 0)
    assert data["examples"] == 6 and sum(data["outcomes"].values()) == 6
    assert data["seconds"] > 0 and data["examples_per_hour"] > 0
    assert data["outcomes"].get("ok", 0) >= 1
    for finding in data["findings"]:
        assert {"fingerprint", "suspect", "cause", "count", "file"} <= set(finding)
        load_scenarios(out / finding["file"])
    assert "6 examples" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.campaign  # a 30-example campaign with a planted defect and its shrink: make test-campaigns (CI)
def test_a_planted_reference_defect_is_found_shrunk_and_replays(tmp_path: Path, monkeypatch) -> None:
    plant_reference_sigmoid_derivative(monkeypatch)
    monkeypatch.setattr(campaign_module, "SHRINK_SECONDS", 20.0)
    out, summary = tmp_path / "out", tmp_path / "fuzz.json"
    code = main(["fuzz", "--examples", "30", "--dtype", "float64", "--seed", "1", "--out", str(out),
                 "--json", str(summary), "--quiet"])
    data = json.loads(summary.read_text())
    assert code == 1
    # The defect's findings: its measured cause, and the carrier as suspect (a finding of the
    # unmodified frameworks, if the campaign drew one, is not the defect's: docs/fuzz.md).
    derivative = [f for f in data["findings"] if f["cause"] == "activation derivative"]
    assert any(f["suspect"] == "numpy" for f in derivative), data
    assert not [f for f in derivative if f["suspect"] in ("keras", "torch")], data  # never blamed elsewhere
    # only the defect's own findings are replayed: the campaign may also find a real difference of the
    # unmodified frameworks with numpy as the odd one out (docs/fuzz.md: a probability of exactly 0
    # under torch's clamped log, whose autograd gives 0 x inf = nan)
    carried = [f for f in derivative if f["suspect"] == "numpy"]
    for finding in carried:
        assert finding["count"] >= 1 and finding["dtype"] == "float64"
        path = out / finding["file"]
        text = path.read_text()
        assert str(tmp_path) not in text  # no absolute path in a generated file
        [scenario] = load_scenarios(path)  # loadable by `nn-parity run`
        assert any(layer.activation == "sigmoid" for layer in scenario.layers), (finding, text)
        fp = Fingerprint(finding["suspect"], finding["stage"], finding["quantity"], finding["dtype"],
                         finding["cause"])
        example = Example(raw=read_toml(path, what="scenario file"), families=())
        outcome = judge_example(example, frameworks=("numpy", "keras", "torch"), dtypes=("float64",))
        assert outcome.kind == FINDING and fp in outcome.fingerprints
        assert main(["run", str(path), "--dtype", "float64", "--no-cache", "--quiet"]) == 1


def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["fuzz", "--examples", "0"]) == 2
    assert main(["fuzz", "--seed", "-1"]) == 2
    assert main(["fuzz", "--out", str(a_file), "--examples", "1"]) == 2
    err = capsys.readouterr().err
    assert "expected an integer >= 1" in err and "expected an integer seed" in err and "--out" in err
    assert "Traceback" not in err


def test_ctrl_c_writes_what_was_found_and_exits_130(tmp_path: Path, monkeypatch, capsys) -> None:
    """An interrupt during the search: the findings so far are written (atomically), then exit 130."""
    fp = Fingerprint("numpy", "gradient kernel", "kernel", "float64", "unknown")
    drawn = Example(raw={"name": "fuzz-example", "data": {"X": [[1.0]], "y": [[0.5]]},
                         "model": {"input_dim": 1, "layers": [{"units": 1, "kernel": [[0.0]]}]},
                         "training": {"loss": "mse", "optimizer": {"name": "sgd", "learning_rate": 0.1},
                                      "epochs": 1}}, families=())

    def interrupted_search(self: campaign_module.Campaign, report: object = None) -> None:
        self.examples, self.seconds = 1, 1.0
        self.kinds["finding"] += 1
        self.records[fp] = campaign_module.Record(fp, drawn, count=1)
        raise KeyboardInterrupt

    monkeypatch.setattr(campaign_module.Campaign, "search", interrupted_search)
    out, summary = tmp_path / "out", tmp_path / "fuzz.json"
    assert main(["fuzz", "--out", str(out), "--json", str(summary), "--quiet"]) == 130
    data = json.loads(summary.read_text())
    assert [f["fingerprint"] for f in data["findings"]] == [fp.text()] and data["examples"] == 1
    load_scenarios(out / data["findings"][0]["file"])
    assert "interrupted" in capsys.readouterr().err
    assert not [p for p in out.rglob("*.tmp")]
