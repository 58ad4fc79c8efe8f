"""Bad scenario files: one line on stderr naming the file and the field, exit code 2, no traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.commands.cli import main

VALID = (Path(__file__).resolve().parent / "scenarios" / "tiny-linear.toml").read_text()

BROKEN = {
    "unknown-activation": (('activation = "linear"', 'activation = "swish"'), "model.layers[0].activation"),
    "unknown-loss": (('loss = "mse"', 'loss = "hinge"'), "training.loss"),
    "unknown-optimizer": (('name = "sgd"', 'name = "lbfgs"'), "training.optimizer.name"),
    "unknown-optimizer-option": (("learning_rate = 0.01 }", "learning_rate = 0.01, warp = 9 }"),
                                 "training.optimizer.warp"),
    "negative-learning-rate": (("learning_rate = 0.01", "learning_rate = -0.01"), "training.optimizer.learning_rate"),
    "kernel-shape": (("kernel = [[0.5], [0.5]]", "kernel = [[0.5, 1.0], [0.5, 1.0]]"), "model.layers[0].kernel"),
    "bias-shape": (("bias = [0.0]", "bias = [0.0, 1.0]"), "model.layers[0].bias"),
    "ragged-array": (("X = [[1.0, 2.0], [3.0, 4.0]]", "X = [[1.0, 2.0], [3.0]]"), "data.X"),
    "non-numeric-array": (("y = [[1.0], [2.0]]", 'y = [[1.0], ["two"]]'), "data.y"),
    "missing-epochs": (("epochs = 3", ""), "training.epochs"),
    "missing-model": (("[model]\ninput_dim = 2", "[modle]\ninput_dim = 2"), "modle"),
    "batch-size-zero": (('batch_size = "full"', "batch_size = 0"), "training.batch_size"),
    "batch-size-word": (('batch_size = "full"', 'batch_size = "all"'), "training.batch_size"),
    "wrong-row-count": (("y = [[1.0], [2.0]]", "y = [[1.0], [2.0], [3.0]]"), "data.y"),
    "invalid-toml": (("epochs = 3", "epochs = = 3"), "expected valid TOML"),
    "shuffle-without-seed": (("epochs = 3", "epochs = 3\nshuffle = true"), "training.shuffle_seed"),
    "shuffle-seed-2**32": (("epochs = 3", "epochs = 3\nshuffle = true\nshuffle_seed = 4294967296"),
                           "training.shuffle_seed"),
    "name-path": (('name = "tiny"', 'name = "../../tiny"'), "name"),
    "name-newline": (('name = "tiny"', 'name = "ti\\nny"'), "name"),
    "kernel-nan": (("kernel = [[0.5], [0.5]]", "kernel = [[nan], [0.5]]"), "model.layers[0].kernel"),
    "learning-rate-inf": (("learning_rate = 0.01", "learning_rate = inf"), "training.optimizer.learning_rate"),
    "y-columns": (("y = [[1.0], [2.0]]", "y = [[1.0, 1.0], [2.0, 2.0]]"), "data.y"),
    "softmax-axis": (('activation = "linear"', 'activation = "softmax"\naxis = 2'), "model.layers[0].axis"),
    "lab-value-step": (("epochs = 3", 'epochs = 3\n[[lab_values]]\nwhat = "loss"\nstep = 3\nvalue = 1.0\n'
                                      "decimals = 2"), "lab_values[0].step"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_bad_scenario_is_one_line_exit_2(case, tmp_path, capsys):
    (old, new), field = BROKEN[case]
    assert old in VALID
    path = tmp_path / f"{case}.toml"
    path.write_text(VALID.replace(old, new))
    code = main(["run", str(path), "--frameworks", "numpy"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and field in err and "expected" in err
    assert "Traceback" not in err


def test_the_valid_file_itself_runs(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(VALID)
    assert main(["run", str(path), "--frameworks", "numpy", "--dtype", "float64"]) == 0


def test_unknown_catalogue_name(capsys):
    assert main(["run", "no-such-scenario", "--frameworks", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "no-such-scenario" in err and "sigmoid-exponential" in err


def test_bad_frameworks_argument(capsys):
    assert main(["run", "softmax-classifier", "--frameworks", "numpy,jax"]) == 2
    assert "numpy,keras,torch" in capsys.readouterr().err
