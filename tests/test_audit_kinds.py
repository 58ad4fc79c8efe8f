"""``nn-parity audit --kind forward|loss|step|train``: a student's code as one more implementation.

A fixture class built from the Week 4 lab's training loop (``tests/audit_class/week4``: right,
the learning rate applied twice, the MSE gradient's factor 2 dropped, the gradient summed over
the rows, the first step's gradient reused, and a right loop returning only (params, losses)) and
a mini-batch loop with biases (``tests/audit_class/minibatch``: right, and the hidden bias
gradient averaged over the units) are audited with ``--kind train`` in one batch each, through
the real CLI, with every output; the files are read back with pandas and json. Each wrong loop
must be ``wrong`` with its named mistake, first step, stage and suspect; each right one
``correct``. Faults without a known cause stay unnamed, and loops that make too few steps or
return nothing readable never pass.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.answers.kind_base import Unreadable
from harness.answers.loop_audit import read_history
from harness.answers.sandbox import call_submission
from harness.commands.cli import main
from harness.run.adapters import REFERENCE, adapter
from harness.run.plan import make_plan
from harness.spec.catalogue import resolve
from harness.testing import audit_frame

CLASS = Path(__file__).resolve().parent / "audit_class"
WEEK4 = CLASS / "week4-train.toml"
MINIBATCH = CLASS / "minibatch-hidden.toml"
TIMEOUT = "120"  # seconds: the loops take about a second each on an idle machine

LR_TWICE = "your update applies the learning rate twice (the step is lr² x the gradient)"
FACTOR_2 = ("the MSE gradient's factor 2 is dropped (your gradients are 0.5 x the gradient of the mean squared "
            "error)")
SUMMED = "the gradient is summed over the batch's rows instead of averaged (N x the batch-mean gradient)"
REUSED = "your loop reuses the first batch's gradient at every step"
BIAS_UNITS = ("your bias gradient is averaged over the layer's units instead of summed over the batch's rows "
              "(every unit gets the same value)")

# file -> (verdict, mistake, first divergent step, stage)
WEEK4_EXPECTED = {
    "week4/factor2_dropped.py": ("wrong", FACTOR_2, 0, "gradient layers.1.kernel"),
    "week4/final_only.py": ("correct", "", None, ""),
    "week4/lr_twice.py": ("wrong", LR_TWICE, 0, "updated layers.0.kernel"),
    "week4/reused_gradient.py": ("wrong", REUSED, 1, "gradient layers.1.kernel"),
    "week4/right.py": ("correct", "", None, ""),
    "week4/summed_rows.py": ("wrong", SUMMED, 0, "gradient layers.1.kernel"),
}
MINIBATCH_EXPECTED = {
    "minibatch/bias_units.py": ("wrong", BIAS_UNITS, 0, "gradient layers.0.bias"),
    "minibatch/right.py": ("correct", "", None, ""),
}



def _audit(folder: str, scenario: Path, out: Path, *extra: str) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["audit", folder, "--function", "train", "--kind", "train", "--scenario", str(scenario),
                     "--timeout", TIMEOUT, "--quiet", "--jobs", "2", "--json", str(out / "audit.json"),
                     "--csv", str(out / "grades.csv"), "--gradebook", str(out / "gradebook.csv"),
                     "--gradescope", str(out / "gradescope"), "--feedback", str(out / "feedback"), *extra])
    return code, stdout.getvalue()


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """Both classes audited once each, from the fixtures' folder (relative paths in every file)."""
    out = tmp_path_factory.mktemp("kinds")
    cwd = os.getcwd()
    os.chdir(CLASS)
    try:
        return {name: (*_audit(name, scenario, out / name), out / name)
                for name, scenario in (("week4", WEEK4), ("minibatch", MINIBATCH))}
    finally:
        os.chdir(cwd)


CASES = [("week4", WEEK4_EXPECTED), ("minibatch", MINIBATCH_EXPECTED)]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_loop_gets_its_verdict_and_named_mistake(audited, name, expected):
    code, text, out = audited[name]
    assert code == 1, text
    data = json.loads((out / "audit.json").read_text())
    assert data["ok"] is False and data["function"] == "train"
    assert [s["file"] for s in data["submissions"]] == list(expected)
    for entry, (verdict, mistake, step, stage) in zip(data["submissions"], expected.values()):
        assert entry["kind"] == "train" and entry["verdict"] == verdict, entry["file"]
        assert entry["diagnosis"] == mistake, entry["file"]
        assert entry["first_divergent"] == step and entry["stage"] == stage, entry["file"]
        if verdict == "wrong":
            assert entry["suspect"] == (f"submission differs from numpy, keras and torch, which agree: suspect "
                                        f"submission, from step {step} at `{stage}`")
            assert entry["evidence"].startswith("your ") and "agree with the reference's loop with that mistake" \
                in entry["evidence"]
            assert entry["score"] == 0
            comparison = next(c for c in entry["comparisons"] if c["b"] == "numpy")
            assert comparison["state"] == "disagree" and comparison["first_divergent_step"] == step
        else:
            assert entry["score"] == entry["max_score"] and not entry["suspect"] and not entry["evidence"]
            assert all(c["state"] == "agree" for c in entry["comparisons"])
    for row, (file, (verdict, mistake, _, _)) in zip([line for line in text.splitlines() if line.startswith(
            f"| {name}/")], expected.items()):
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[0] == file and cells[1] == verdict and cells[-2] == mistake


@pytest.mark.slow
def test_the_stage_says_what_agreed_before_it(audited):
    data = json.loads((audited["week4"][2] / "audit.json").read_text())
    by_file = {s["file"]: s for s in data["submissions"]}
    # the learning rate twice: the loss and both gradients of step 0 are right, its update is not
    assert by_file["week4/lr_twice.py"]["right_before"] == [
        "step 0: the loss", "step 0: the gradient of w2 (layers.1.kernel)",
        "step 0: the gradient of w1 (layers.0.kernel)"]
    assert by_file["week4/reused_gradient.py"]["right_before"] == ["step 0: every compared quantity",
                                                                   "step 1: the loss"]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_gradebook_files_read_back_with_pandas(audited, name, expected):
    out = audited[name][2]
    grades = pd.read_csv(out / "grades.csv", keep_default_na=False)
    assert list(grades.columns) == ["file", "verdict", "score", "max_score", "diagnosis"]
    assert list(grades["file"]) == list(expected)
    assert list(grades["verdict"]) == [v for v, *_ in expected.values()]
    assert list(grades["diagnosis"]) == [m for _, m, *_ in expected.values()]
    book = pd.read_csv(out / "gradebook.csv", keep_default_na=False, dtype={"ID": str, "SIS User ID": str})
    points = 3 if name == "week4" else 5  # the loss and each parameter
    assert list(book.columns) == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"train ({points})",
                                  "Feedback"]
    assert list(book["Student"]) == [Path(f).stem for f in expected] == list(book["SIS Login ID"])
    assert list(book[f"train ({points})"]) == [points if v == "correct" else 0 for v, *_ in expected.values()]
    assert all(f.startswith(v) for f, (v, *_) in zip(book["Feedback"], expected.values()))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_one_gradescope_results_json_per_submission(audited, name, expected):
    folder = audited[name][2] / "gradescope"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.replace("/", "__") + ".results.json"
                                                              for f in expected)
    for file, (verdict, mistake, _, _) in expected.items():
        data = json.loads((folder / (file.replace("/", "__") + ".results.json")).read_text())
        # Gradescope's format: a top-level score, tests with name, score, max_score, output, visibility
        assert set(data) <= {"score", "execution_time", "output", "visibility", "stdout_visibility", "extra_data",
                             "tests", "leaderboard", "output_format"}
        assert isinstance(data["score"], float) and isinstance(data["execution_time"], int)
        assert data["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
        for test in data["tests"]:
            assert {"name", "score", "max_score", "output", "visibility", "status"} <= set(test)
            assert test["status"] == ("passed" if test["score"] == test["max_score"] else "failed")
        assert data["score"] == sum(t["score"] for t in data["tests"])
        assert data["tests"][0]["name"] == "loss (mse) at every step"
        assert f": {verdict} (" in data["output"].splitlines()[0] and mistake in data["output"]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_feedback_says_what_is_right_what_is_wrong_and_why_without_the_key(audited, name, expected):
    folder = audited[name][2] / "feedback"
    scenario = resolve(WEEK4 if name == "week4" else MINIBATCH)
    plan = make_plan(scenario, "float64")
    run = adapter(REFERENCE).run(plan)
    # the answer key's values: the final parameters, the first and the last loss
    key = np.concatenate([*(v.ravel() for v in run.final_params.values()), run.losses[[0, -1]]])
    for file, (verdict, mistake, step, stage) in expected.items():
        text = (folder / (file.replace("/", "__") + ".md")).read_text()
        assert f"**{file}: {verdict}**" in text and "## What is right" in text
        if verdict == "wrong":
            assert "## The first thing that is wrong" in text and f"**{mistake}**" in text
            assert f"- where: step {step}, at `{stage}`" in text and "## The evidence" in text
            assert "your code differs from numpy, keras and torch, which agree" in text
        else:
            assert "Everything agrees with every implementation" in text
        numbers = [float(n) for n in re.findall(r"-?\d+\.\d+(?:e[-+]\d+)?", text)]
        for number in numbers:  # differences and ratios only: no value of the reference's run
            assert not np.any(np.isclose(key, number, rtol=5e-3, atol=0)), (file, number)


@pytest.mark.slow
def test_the_reshuffled_plan_is_compared_in_its_first_epoch_only(tmp_path):
    """A plan that reshuffles every epoch cannot be given to a loop that takes consecutive slices:
    the first epoch is compared, and the audit says so."""
    shuffled = tmp_path / "shuffled.toml"
    shuffled.write_text(MINIBATCH.read_text().replace("name = \"minibatch-hidden\"", "name = \"shuffled\"")
                        .replace("shuffle = false", "shuffle = true\nshuffle_seed = 7"))
    out = tmp_path / "out"
    out.mkdir()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["audit", str(CLASS / "minibatch" / "right.py"), "--function", "train", "--kind", "train",
                     "--scenario", str(shuffled), "--timeout", TIMEOUT, "--json", str(out / "a.json")])
    data = json.loads((out / "a.json").read_text())
    assert code == 0 and data["verdict"] == "correct", stdout.getvalue()
    assert data["compared"].startswith("5 steps")
    assert any("reshuffles its rows every epoch" in n and "steps 0-4 are compared, not the 30" in n
               for n in data["notes"])


# --- loops the audit must not pass, and mistakes it must not name ------------------------------

LOOP = (CLASS / "week4" / "right.py").read_text()


def _train(tmp_path: Path, name: str, source: str) -> tuple[dict, str]:
    (tmp_path / name).write_text(source)
    out = tmp_path / f"{name}.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["audit", str(tmp_path / name), "--function", "train", "--kind", "train", "--scenario",
                     str(WEEK4), "--timeout", TIMEOUT, "--json", str(out)])
    data = json.loads(out.read_text())
    assert code == (0 if data["ok"] else 1)
    return data, stdout.getvalue()


@pytest.mark.slow
def test_an_unknown_mistake_is_wrong_and_left_unnamed(tmp_path):
    data, text = _train(tmp_path, "odd.py", LOOP.replace("w1 = w1 - lr * g1", "w1 = w1 - lr * 0.7 * g1"))
    assert data["verdict"] == "wrong" and data["diagnosis"] == "" and data["evidence"] == ""
    assert data["first_divergent"] == 0 and data["stage"] == "updated layers.0.kernel"
    assert "cause: no known cause confirmed" in text


@pytest.mark.slow
def test_a_loop_that_stops_early_is_wrong(tmp_path):
    data, _ = _train(tmp_path, "short.py", LOOP.replace("for _ in range(epochs):", "for _ in range(epochs - 1):"))
    assert data["verdict"] == "wrong" and data["first_divergent"] == 199 and data["stage"] == "the number of steps"


@pytest.mark.slow
def test_a_history_that_is_not_one_is_a_crash(tmp_path):
    data, _ = _train(tmp_path, "nothing.py", LOOP.replace("    return history", "    return 'done'"))
    assert data["verdict"] == "crashed" and data["crash"].startswith("the function returned a str: expected a list")


# --- the other kinds: one right and one wrong submission each ----------------------------------

FORWARD = """import numpy as np

def forward(params, X):
    a1 = 1 / (1 + np.exp(-(X @ params["layers.0.kernel"]{bias})))
    return a1 @ params["layers.1.kernel"] + params["layers.1.bias"]
"""
LOSS = """import numpy as np
from right_forward import forward

def loss(params, X, y):
    return np.{reduce}((forward(params, X) - y) ** 2)
"""
STEP = """import numpy as np

def step(params, X, y, lr):
    W1, b1, W2, b2 = (params[k] for k in ("layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"))
    a1 = 1 / (1 + np.exp(-(X @ W1 + b1)))
    d2 = 2 * (a1 @ W2 + b2 - y) / len(X)
    d1 = (d2 @ W2.T) * a1 * (1 - a1)
    rate = {rate}
    return {{"w1": W1 - rate * X.T @ d1, "b1": b1 - rate * d1.sum(0), "w2": W2 - rate * a1.T @ d2,
             "b2": b2 - rate * d2.sum(0)}}
"""
KINDS = {
    "forward": (FORWARD.format(bias=' + params["layers.0.bias"]'), FORWARD.format(bias=""),
                "your layer 1 leaves out its bias", "output layers.1"),
    "loss": (LOSS.format(reduce="mean"), LOSS.format(reduce="sum"),
             "your loss is summed over the batch's rows instead of averaged (N x the mean)", "loss"),
    "step": (STEP.format(rate="lr"), STEP.format(rate="lr * lr"), LR_TWICE, "updated layers.0.kernel"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_forward_loss_and_step_right_and_wrong(tmp_path, kind):
    right, wrong, mistake, stage = KINDS[kind]
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / f"right_{kind}.py").write_text(right)
    (subs / f"wrong_{kind}.py").write_text(wrong)
    (subs / "right_forward.py").write_text(KINDS["forward"][0])  # the loss submissions import it
    out = tmp_path / "audit.json"
    paths = [str(subs / f"right_{kind}.py"), str(subs / f"wrong_{kind}.py")]
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["audit", *paths, "--function", kind, "--kind", kind, "--scenario", str(MINIBATCH),
                     "--timeout", TIMEOUT, "--quiet", "--json", str(out)])
    data = json.loads(out.read_text())
    assert code == 1
    right_entry, wrong_entry = data["submissions"]
    assert right_entry["verdict"] == "correct" and right_entry["score"] == right_entry["max_score"]
    assert right_entry["compared"] == "4 evaluation points: the reference's parameters before steps 0-3"
    assert wrong_entry["verdict"] == "wrong" and wrong_entry["diagnosis"] == mistake
    assert wrong_entry["first_divergent"] == 0 and wrong_entry["stage"] == stage
    assert wrong_entry["suspect"] == (f"submission differs from numpy, keras and torch, which agree: suspect "
                                      f"submission, from point 0 at `{stage}`")
    assert wrong_entry["evidence"].startswith("at each of the 4 evaluation points, what you returned equals")


# --- reading what a train returned (no frameworks) ------------------------------------------


def test_a_history_comes_back_from_the_sandbox_stacked_and_whole(tmp_path):
    (tmp_path / "loop.py").write_text(LOOP)
    scenario = resolve(WEEK4)
    plan = make_plan(scenario, "float64")
    called = call_submission(tmp_path / "loop.py", "train", [[dict(plan.initial_params), plan.X, plan.y, 0.0005,
                                                              3, plan.X.shape[0]]])
    assert called.error == ""
    history = read_history(called.values[0], {"layers.0.kernel": "w1", "layers.1.kernel": "w2"})
    assert len(history.losses) == 3 and not history.final_only
    assert [len(v) for v in history.params.values()] == [3, 3] and set(history.grads) == set(history.params)
    assert history.params["layers.0.kernel"][0].shape == (3, 2)


@pytest.mark.parametrize(("value", "says"), [
    (None, "the function returned a NoneType: expected a list of per-step records"),
    ([{"loss": 1.0, "params": {"w1": np.zeros((3, 2))}}, {"loss": 2.0}], "step 1's record has no 'params'"),
    ([{"loss": "high"}], "step 0's loss is a str, not numbers"),
    (({"w1": 1}, "losses"), "the function returned a tuple: expected a list"),
])
def test_an_unreadable_history_says_why(value, says):
    with pytest.raises(Unreadable, match=re.escape(says)):
        read_history(value, {"layers.0.kernel": "w1", "layers.1.kernel": "w2"})


@pytest.mark.slow
def test_the_audit_as_a_dataframe_from_python():
    frame = audit_frame([str(CLASS / "minibatch")], function="train", scenario=str(MINIBATCH), kind="train",
                        jobs=2, timeout=float(TIMEOUT))
    assert len(frame) == 2 * 5  # two submissions, five scored quantities each
    assert list(frame.columns[:8]) == ["file", "kind", "function", "verdict", "quantity", "label", "status", "ok"]
    assert {"max_abs_numpy", "max_abs_keras", "max_abs_torch", "first_divergent", "stage", "diagnosis"} <= set(
        frame.columns)
    wrong = frame[frame["file"].str.endswith("bias_units.py")]
    assert set(wrong["verdict"]) == {"wrong"} and set(wrong["diagnosis"]) == {BIAS_UNITS}
    assert set(wrong["stage"]) == {"gradient layers.0.bias"} and not wrong["ok"].any()
    right = frame[frame["file"].str.endswith("right.py")]
    assert right["ok"].all() and (right["max_abs_torch"] < 1e-12).all()


STUDENT_CLASS = '''import numpy as np


class WeekFourNet:
    def __init__(self, w1, w2):
        self.w1, self.w2 = w1.copy(), w2.copy()
        self.losses = []

    def fit(self, X, y, eta, iterations):
        for _ in range(iterations):
            a1 = 1 / (1 + np.exp(-(X @ self.w1)))
            y_hat = np.exp(a1 @ self.w2)
            self.losses.append(np.mean((y_hat - y) ** 2))
            delta2 = 2 * (y_hat - y) * y_hat
            delta1 = (delta2 @ self.w2.T) * a1 * (1 - a1)
            self.w2 = self.w2 - {rate} * (a1.T @ delta2) / len(X)
            self.w1 = self.w1 - eta * (X.T @ delta1) / len(X)
'''
ADAPTER = '''def train(params, X, y, lr, epochs, batch_size):
    net = WeekFourNet(params["layers.0.kernel"], params["layers.1.kernel"])
    net.fit(X, y, lr, epochs)
    return {"w1": net.w1, "w2": net.w2}, net.losses
'''


@pytest.mark.slow
def test_an_adapter_wraps_a_students_class_as_a_train(tmp_path):
    (tmp_path / "right.py").write_text(STUDENT_CLASS.format(rate="eta"))
    (tmp_path / "wrong.py").write_text(STUDENT_CLASS.format(rate="2 * eta"))
    (tmp_path / "adapter.py").write_text(ADAPTER)
    out = tmp_path / "audit.json"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["audit", str(tmp_path / "right.py"), str(tmp_path / "wrong.py"), "--function", "train",
                     "--kind", "train", "--scenario", str(WEEK4), "--adapter", str(tmp_path / "adapter.py"),
                     "--timeout", TIMEOUT, "--quiet", "--json", str(out)])
    right, wrong = json.loads(out.read_text())["submissions"]
    assert code == 1 and right["verdict"] == "correct" and right["compared"].startswith("200 steps, loss (final")
    # only w2's update is doubled: no known mistake reproduces it, and the losses say where
    assert wrong["verdict"] == "wrong" and wrong["first_divergent"] == 1 and wrong["stage"] == "loss"
    assert wrong["diagnosis"].startswith("differs from the reference from step 1 at `loss`: no known cause")
