"""A printed training log as one answer: Keras' ``hist.history`` pasted as ``print`` shows it (or a
loss curve, every k-th epoch), each entry judged by its printed digits.

The log is made by real Keras: ``model.fit`` in a child process on the scenario's data and initial
weights (float32, Keras' default), its ``hist.history`` printed and pasted into a key.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.answers.key_file import Malformed, load_key
from harness.answers.verdicts import check_entry
from harness.commands.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = """name = "history-tiny"
[data]
X = [[0.1, 0.2], [0.4, -0.3], [0.5, 0.9], [-0.7, 0.2], [0.3, 0.3]]
y = [[0.3], [0.1], [1.2], [-0.4], [0.5]]
[model]
input_dim = 2
[[model.layers]]
units = 3
activation = "tanh"
kernel = [[0.2, -0.4, 0.6], [0.5, 0.1, -0.3]]
bias = [0.1, 0.0, -0.1]
[[model.layers]]
units = 1
activation = "linear"
kernel = [[0.3], [-0.2], [0.5]]
[training]
loss = "mse"
optimizer = { name = "sgd", learning_rate = 0.1 }
batch_size = 2
epochs = 6
shuffle = false
"""
# batches of 2, 2 and 1 rows: an epoch's loss is the batches' losses weighted by their rows
FIT = """
import numpy as np, keras
X = np.array([[0.1, 0.2], [0.4, -0.3], [0.5, 0.9], [-0.7, 0.2], [0.3, 0.3]])
y = np.array([[0.3], [0.1], [1.2], [-0.4], [0.5]])
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)])
model.set_weights([np.array([[0.2, -0.4, 0.6], [0.5, 0.1, -0.3]]), np.array([0.1, 0.0, -0.1]),
                   np.array([[0.3], [-0.2], [0.5]]), np.zeros(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
hist = model.fit(X, y, batch_size=2, epochs=6, shuffle=False, verbose=0)
print(hist.history)
print(hist.history["loss"][1::2])
"""


@pytest.fixture(scope="module")
def printed_history() -> tuple[str, str]:
    """(print(hist.history), print(hist.history['loss'][1::2])) from a real model.fit."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, env=env, timeout=600,
                          check=True)
    history, every_other = done.stdout.strip().splitlines()[-2:]
    assert history.startswith("{'loss': [") and len(ast.literal_eval(history)["loss"]) == 6
    return history, every_other


def key(tmp_path: Path, expected: str, extra: str = "", dtype: str = "float32") -> Path:
    (tmp_path / "tiny.toml").write_text(SCENARIO)
    path = tmp_path / "key.toml"
    path.write_text(f'title = "history"\n[[answer]]\nid = "fit"\ncompute = "scenario"\nscenario = "tiny.toml"\n'
                    f'quantity = "history"\ndtype = "{dtype}"\n{extra}expected = """\n{expected}\n"""\n')
    return path


def checked(path: Path):
    [entry] = load_key(path).entries
    assert not isinstance(entry, Malformed), entry.error.one_line()
    return check_entry(entry)


@pytest.mark.slow
def test_a_right_keras_history_is_correct(tmp_path, printed_history, capsys):
    history, _ = printed_history
    result = checked(key(tmp_path, history))
    assert result.verdict == "correct", result.message
    [part] = result.parts
    assert part.expected is not None and part.expected.values.shape == (6,)
    assert set(result.by_framework) == {"numpy", "keras", "torch"}
    assert main(["check", str(tmp_path / "key.toml"), "--no-cache"]) == 0


@pytest.mark.slow
def test_one_wrong_entry_fails_naming_its_epoch_and_key(tmp_path, printed_history):
    history, _ = printed_history
    losses = ast.literal_eval(history)["loss"]
    planted = history.replace(repr(losses[3]), repr(round(losses[3] * 1.001, 7)))
    assert planted != history
    result = checked(key(tmp_path, planted))
    assert result.verdict == "wrong"
    assert result.message.startswith("loss at epoch 4/6 (entry [3]) = "), result.message
    assert "(1 of 6 elements wrong)" in result.message


@pytest.mark.slow
def test_every_kth_epoch_is_judged_at_its_epochs(tmp_path, printed_history):
    _, every_other = printed_history  # hist.history['loss'][1::2]: epochs 2, 4, 6
    result = checked(key(tmp_path, every_other, extra="every = 2\nfirst = 1\n"))
    assert result.verdict == "correct", result.message
    shifted = checked(key(tmp_path, every_other, extra="every = 2\n"))  # read as epochs 1, 3, 5: wrong
    assert shifted.verdict == "wrong" and shifted.message.startswith("loss at epoch 1/6 (entry [0])")


@pytest.mark.parametrize("expected, extra, field, what", [
    ("{'loss': [0.5, 0.4], 'accuracy': [0.2, 0.3]}", "", "expected.accuracy", "the keys the harness computes"),
    ("[0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1]", "", "expected", "at most 6 numbers"),
    ("[0.5, 0.4, 0.3, 0.2]", "every = 2\n", "expected", "at most 3 numbers"),
    ("{'loss': [0.5, 0.4] 'val_loss': [1]}", "", "expected", "print(hist.history)"),
    ("[0.5]", "step = 3\n", "step", "no step"),
    ("[0.5]", "first = 6\n", "first", "a 0-based epoch below 6"),
])
def test_a_history_that_cannot_be_judged_is_malformed(tmp_path, expected, extra, field, what):
    [entry] = load_key(key(tmp_path, expected, extra)).entries
    assert isinstance(entry, Malformed)
    line = entry.error.one_line()
    assert f"answer[fit].{field}" in line and what in line, line
