"""``--space`` narrows everything the strategy draws (early stop, initializers, a softmax's axis,
forward-only scenarios, beside the fields test_fuzz_engine covers); a scenario degenerate by
nature (a softmax over an axis of length 1) is drawn rarely, and still recognised when it is."""
from __future__ import annotations

from pathlib import Path

from harness.fuzz.draw import draw
from harness.fuzz.oracle import degenerate
from harness.fuzz.space import EARLY_STOPS, RARELY, WHOLE, examples
from harness.fuzz.space_file import read_space

ALWAYS = """[data]
families = []
[model]
activation = "softmax"
initializer = "glorot_uniform"
axis = 0
[training]
loss = "mse"
batch_size = "full"
early_stop_tol = 1e-4
forward_only = false
"""
NEVER = """[model]
initializer = "explicit"
axis = -1
[training]
early_stop_tol = "none"
forward_only = true
"""
DRAWS = 12


def _drawn(tmp_path: Path, text: str, seed: int = 5) -> list:
    path = tmp_path / "space.toml"
    path.write_text(text)
    space, _, _ = read_space(path)
    strategy = examples(("numpy", "keras", "torch"), space)
    return [draw(strategy, seed, i) for i in range(DRAWS)]


def test_a_space_file_sets_the_early_stop_initializers_softmax_axis_and_training(tmp_path: Path) -> None:
    for example in _drawn(tmp_path, ALWAYS):
        raw, scenario = example.raw, example.scenario()
        assert raw["training"]["early_stop_tol"] == 1e-4, raw["training"]
        for layer in raw["model"]["layers"]:
            assert "kernel" not in layer and layer["initializer"]["name"] == "glorot_uniform", layer
            if layer.get("use_bias", True):
                assert layer["bias_initializer"]["name"] == "glorot_uniform", layer
        assert all(layer.axis == 0 for layer in scenario.layers if layer.activation == "softmax")


def test_a_space_file_leaves_them_out(tmp_path: Path) -> None:
    for example in _drawn(tmp_path, NEVER):
        raw = example.raw
        assert "training" not in raw  # forward only, every one
        for layer in raw["model"]["layers"]:
            assert "kernel" in layer and "initializer" not in layer and "bias_initializer" not in layer
            assert layer.get("axis", -1) == -1


def test_the_whole_space_keeps_every_early_stop_and_initializer() -> None:
    assert WHOLE.early_stop_tol == (None, *EARLY_STOPS) and WHOLE.forward_only == (False, True)
    assert "explicit" in WHOLE.initializer and "glorot_uniform" in WHOLE.initializer and WHOLE.axis == (-1, 0)


def test_a_softmax_over_an_axis_of_length_1_is_drawn_rarely_and_recognised(tmp_path: Path) -> None:
    """Where it could be drawn every time (an MSE softmax output, batches of one row, the rows as
    the axis), it is drawn about one time in ``RARELY``, not always; and each one drawn is the
    degenerate case the oracle names (``degenerate``)."""
    path = tmp_path / "space.toml"
    path.write_text('[data]\nfamilies = []\nrows = [1, 2]\n[model]\nlayers = 1\nactivation = "softmax"\n'
                    'units = [1, 2]\naxis = [-1, 0]\n[training]\nloss = "mse"\nbatch_size = 1\nforward_only = false\n')
    space, _, _ = read_space(path)
    strategy = examples(("numpy",), space)
    drawn = [draw(strategy, 2, i).scenario() for i in range(4 * RARELY)]
    named = [degenerate(s, s.data.X.shape[0]) for s in drawn]
    assert 1 <= sum(bool(n) for n in named) <= 12, named  # expected 4 in 64 (1 in 16 twice over); never all
    assert all("a softmax over an axis of length 1" in n for n in named if n)
