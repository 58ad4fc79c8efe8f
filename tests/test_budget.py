"""Work is bounded before it starts: a scenario whose runs would not fit in memory is refused
with exit 2, naming the field that dominates and the estimate, before anything is allocated."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.commands.cli import main
from harness.run.budget import estimate, parse_size
from harness.spec.scenario import load_scenarios

BASE = """
name = "big"
[data]
generator = "teacher"
n = {n}
seed = 0
[[data.teacher]]
kernel = [[0.5], [0.5]]
[model]
input_dim = 2
[[model.layers]]
units = {units}
activation = "tanh"
initializer = {{ name = "glorot_uniform", seed = 1 }}
[[model.layers]]
units = 1
initializer = {{ name = "glorot_uniform", seed = 2 }}
[training]
loss = "mse"
optimizer = {{ name = "sgd", learning_rate = 0.01 }}
batch_size = 8
epochs = {epochs}
"""

HUGE = {
    "n": (dict(n=10**9, units=4, epochs=1), "data.n"),
    "units": (dict(n=8, units=10**8, epochs=1), "model.layers[0].units"),
    "epochs": (dict(n=8, units=4, epochs=10**12), "training.epochs"),
}


@pytest.mark.parametrize("case", list(HUGE))
def test_a_scenario_too_big_for_the_machine_is_refused_before_it_allocates(tmp_path, capsys, case):
    sizes, field = HUGE[case]
    path = tmp_path / "big.toml"
    path.write_text(BASE.format(**sizes))
    start = time.perf_counter()
    code = main(["run", str(path), "--frameworks", "numpy", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"big.toml: {field}: expected a scenario whose runs fit in the memory limit" in err[0]
    assert "(--max-memory); it needs about" in err[0]
    assert time.perf_counter() - start < 5  # refused, not attempted


def test_max_memory_sets_the_limit(tmp_path, capsys):
    path = tmp_path / "small.toml"
    path.write_text(BASE.format(n=64, units=4, epochs=10))
    assert main(["run", str(path), "--frameworks", "numpy", "--quiet", "--max-memory", "1K"]) == 2
    assert "memory limit of 1 KiB" in capsys.readouterr().err
    assert main(["run", str(path), "--frameworks", "numpy", "--quiet", "--max-memory", "1G"]) == 0


def test_the_estimate_counts_every_run_and_dtype(tmp_path):
    """The trajectory: steps x (2 x parameters + 1) values per run and dtype; 8 x 100 steps of
    a 2-4-1 network with biases (17 parameters)."""
    path = tmp_path / "s.toml"
    path.write_text(BASE.format(n=64, units=4, epochs=100))
    [scenario] = load_scenarios(path)
    one = estimate(scenario, runs_per_dtype=1, dtypes=("float64",))
    assert one.steps == 800 and one.parts["the recorded trajectory"] == ("training.epochs", 800 * 35 * 8)
    both = estimate(scenario, runs_per_dtype=3, dtypes=("float64", "float32"))
    assert both.parts["the recorded trajectory"][1] == 3 * 800 * 35 * (8 + 4)


def test_sizes_parse():
    assert parse_size("8G") == 8 * 2**30 and parse_size("512M") == 512 * 2**20 and parse_size("1.5GiB") == 3 * 2**29
    assert parse_size("1000") == 1000
    with pytest.raises(ValueError, match="expected a size"):
        parse_size("lots")


@pytest.mark.parametrize("command", [["run", "{file}", "--frameworks", "numpy", "--quiet"],
                                     ["audit", "{sub}", "--function", "backward", "--scenario", "{file}"]])
def test_the_held_out_rows_a_generator_draws_are_counted(tmp_path, capsys, command):
    """The xor generator's ``n_test = 10000000000`` (a MemoryError traceback when drawn) is refused by
    the budget, naming the field, in ``run`` and in ``audit`` (which draws the data for its first batch)."""
    xor = (Path(__file__).resolve().parent.parent / "scenarios" / "xor-perceptron.toml").read_text()
    assert "\nn_test = 100\n" in xor
    (tmp_path / "huge.toml").write_text(xor.replace("\nn_test = 100\n", "\nn_test = 10000000000\n"))
    (tmp_path / "sub.py").write_text("def backward(params, X, y):\n    return {}\n")
    argv = [a.format(file=tmp_path / "huge.toml", sub=tmp_path / "sub.py") for a in command]
    start = time.monotonic()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nn-parity: error: {tmp_path / 'huge.toml'}: data.n_test: expected a "
                                               "scenario whose runs fit in the memory limit"), err
    assert time.monotonic() - start < 30
