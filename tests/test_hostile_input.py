"""Hostile and broken input to the scenario and answer-key loaders.

Each fault is planted in a real file and goes through the real command line: exit code 2 and
exactly one ``nn-parity: error:`` line on stderr naming the file, the field and what was
expected; never a traceback, never a run on what should have been refused. A printed nan is
judged by the one comparison rule in a scenario's lab values and in an answer key alike: it
matches only nan. Every run here is the NumPy reference's alone (fast).
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from harness.answers import key_file
from harness.answers.key_file import load_key
from harness.answers.plausibility import implausible
from harness.answers.verdicts import check_entry
from harness.commands.cli import main
from harness.errors import BadInput
from harness.pipeline import run_scenario
from harness.spec import scenario as scenario_module
from harness.spec.catalogue import catalogue_scenarios, resolve
from harness.spec.names import NAME_MAX, NAME_PATTERN
from harness.spec.printed import parse_printed
from harness.spec.scenario import load_scenarios

# 2 rows, full batch, 3 epochs: 3 steps (0, 1, 2); the outputs before step 3 are the final ones
SCENARIO = (Path(__file__).resolve().parent / "scenarios" / "tiny-linear.toml").read_text()

FORWARD = """
name = "forward"
[data]
X = [[1.0, 2.0], [3.0, 4.0]]
[model]
input_dim = 2
[[model.layers]]
units = 2
activation = "softmax"
kernel = [[0.5, 1.0], [0.5, 1.0]]
"""

TEACHER = """
name = "teacher"
[data]
generator = "teacher"
X = [[1.0, 2.0], [3.0, 4.0]]
[[data.teacher]]
kernel = [[0.25], [0.75]]
bias = [0.5]
[model]
input_dim = 2
[[model.layers]]
units = 1
kernel = [[0.5], [0.5]]
[training]
loss = "mse"
optimizer = { name = "sgd", learning_rate = 0.01 }
epochs = 1
"""

XOR = """
name = "xor"
[data]
generator = "xor"
seed = 0
n_train = 8
n_validation = 0
n_test = 0
[model]
input_dim = 2
[[model.layers]]
units = 1
activation = "sigmoid"
initializer = { name = "normal", seed = 1 }
[training]
loss = "binary_crossentropy"
optimizer = { name = "sgd", learning_rate = 0.1 }
epochs = 1
"""

KEY = """title = "hostile"
[[answer]]
id = "a"
compute = "dense"
X = [[1, 2], [2, 1]]
w = [[1], [1]]
b = [[0], [0]]
expected = [[3], [3]]
"""


def run_argv(path: Path) -> list[str]:
    return ["run", str(path), "--frameworks", "numpy", "--dtype", "float64", "--quiet"]


def check_argv(path: Path) -> list[str]:
    return ["check", str(path), "--frameworks", "numpy"]


def write(tmp_path: Path, text: str | bytes, name: str = "input.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], *, file: Path, field: str, expected: str) -> str:
    """Exit 2, exactly one ``nn-parity: error:`` line naming ``file``, ``field`` ("" for the file as a
    whole) and containing ``expected``; no traceback. Returns the line."""
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("nn-parity: error:")]
    assert code == 2, captured.err
    assert len(errors) == 1, captured.err
    [line] = errors
    where = f"nn-parity: error: {file}: {field}: expected" if field else f"nn-parity: error: {file}: expected"
    assert line.startswith(where) or (field and f"{file}: " in line and f"{field}: expected" in line), line
    assert expected in line, line
    return line


# --- 1. scenario names are identifiers ----------------------------------------------

NAME_RULE = "lowercase letters, digits and dashes"
BAD_NAMES = {
    "absolute-path": '"/../../../srv/data/victim"',
    "relative-path": '"../victim"',
    "newline": '"a\\nb"',
    "trailing-newline": '"tiny\\n"',
    "pipe": '"a|b"',
    "uppercase": '"Tiny"',
    "underscore": '"tiny_mlp"',
    "space": '"tiny mlp"',
    "leading-dash": '"-tiny"',
    "empty": '""',
    "non-ascii": '"t\u00efny"',
    "81-characters": '"' + "a" * (NAME_MAX + 1) + '"',
}


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_a_scenario_name_must_be_an_identifier(tmp_path, capsys, case):
    path = write(tmp_path, edit(SCENARIO, 'name = "tiny"', f"name = {BAD_NAMES[case]}"))
    refused(run_argv(path), capsys, file=path, field="name", expected=NAME_RULE)


def test_a_name_of_80_characters_is_fine(tmp_path):
    name = "a" + "-b" * 39 + "c"
    assert len(name) == NAME_MAX
    [scenario] = load_scenarios(write(tmp_path, edit(SCENARIO, 'name = "tiny"', f'name = "{name}"')))
    assert scenario.name == name


@pytest.mark.parametrize("suffix, base", [('"../x"', "tiny"), ('"X"', "tiny"), ('"a|b"', "tiny"),
                                          ('"b"', "a" * (NAME_MAX - 1))])
def test_a_variant_name_and_the_name_it_makes_must_be_identifiers(tmp_path, capsys, suffix, base):
    text = edit(SCENARIO, 'name = "tiny"', f'name = "{base}"') + f"\n[[variants]]\nname = {suffix}\n"
    path = write(tmp_path, text)
    line = refused(run_argv(path), capsys, file=path, field="variants[0].name", expected="")
    assert "at most 80 characters" in line


def test_report_refuses_a_name_that_escapes_its_output_folder(tmp_path, capsys):
    """``report`` would write ``<out>/../victim.md``; the name is refused before anything runs."""
    path = write(tmp_path, edit(SCENARIO, 'name = "tiny"', 'name = "../victim"'), "escape.toml")
    out = tmp_path / "out"
    refused(["report", "--scenario", str(path), "--out", str(out), "--quiet"], capsys, file=path, field="name",
            expected=NAME_RULE)
    assert not (tmp_path / "victim.md").exists()
    assert not out.exists() or not any(out.iterdir())


def test_the_catalogue_names_fit_the_rule_and_list_shows_49_scenarios(capsys):
    names = [s.name for s in catalogue_scenarios()]
    assert len(names) == 49 and len(set(names)) == 49
    assert all(NAME_PATTERN.fullmatch(n) and len(n) <= NAME_MAX for n in names)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("|") and not line.startswith(("| name", "|:"))]
    assert len(rows) == 49 and "invalid" not in out


# --- 2. non-finite numbers ----------------------------------------------------------

OPTIMIZER = 'optimizer = { name = "sgd", learning_rate = 0.01 }'
NON_FINITE = {
    # case: (base text, old, new, field)
    "X-nan": (SCENARIO, "X = [[1.0, 2.0], [3.0, 4.0]]", "X = [[1.0, nan], [3.0, 4.0]]", "data.X"),
    "X-huge-integer": (SCENARIO, "X = [[1.0, 2.0], [3.0, 4.0]]", f"X = [[1{'0' * 400}, 2.0], [3.0, 4.0]]", "data.X"),
    "y-inf": (SCENARIO, "y = [[1.0], [2.0]]", "y = [[1.0], [inf]]", "data.y"),
    "kernel-minus-inf": (SCENARIO, "kernel = [[0.5], [0.5]]", "kernel = [[-inf], [0.5]]", "model.layers[0].kernel"),
    "bias-plus-inf": (SCENARIO, "bias = [0.0]", "bias = [+inf]", "model.layers[0].bias"),
    "learning-rate-nan": (SCENARIO, "learning_rate = 0.01", "learning_rate = nan", "training.optimizer.learning_rate"),
    "learning-rate-inf": (SCENARIO, "learning_rate = 0.01", "learning_rate = inf", "training.optimizer.learning_rate"),
    "learning-rate-1e400": (SCENARIO, "learning_rate = 0.01", "learning_rate = 1e400",
                            "training.optimizer.learning_rate"),
    "learning-rate-huge-integer": (SCENARIO, "learning_rate = 0.01", f"learning_rate = 1{'0' * 400}",
                                   "training.optimizer.learning_rate"),
    "momentum-nan": (SCENARIO, "learning_rate = 0.01 }", "learning_rate = 0.01, momentum = nan }",
                     "training.optimizer.momentum"),
    "adam-epsilon-inf": (SCENARIO, OPTIMIZER, 'optimizer = { name = "adam", learning_rate = 0.01, epsilon = inf }',
                         "training.optimizer.epsilon"),
    "rmsprop-rho-nan": (SCENARIO, OPTIMIZER, 'optimizer = { name = "rmsprop", learning_rate = 0.01, rho = nan }',
                        "training.optimizer.rho"),
    "early-stop-tol-inf": (SCENARIO, "epochs = 3", "epochs = 3\nearly_stop_tol = inf", "training.early_stop_tol"),
    "tolerance-rtol-inf": (SCENARIO, "epochs = 3", "epochs = 3\n[tolerance]\nfloat64 = { rtol = inf, atol = 0.0 }",
                           "tolerance.float64.rtol"),
    "tolerance-atol-nan": (SCENARIO, "epochs = 3", "epochs = 3\n[tolerance]\nfloat32 = { rtol = 0.0, atol = nan }",
                           "tolerance.float32.atol"),
    "lab-value-atol-inf": (SCENARIO, "epochs = 3", 'epochs = 3\n[[lab_values]]\nwhat = "loss"\nstep = 0\n'
                           "value = [1.0]\natol = inf", "lab_values[0].atol"),
    "teacher-kernel-nan": (TEACHER, "kernel = [[0.25], [0.75]]", "kernel = [[nan], [0.75]]",
                           "data.teacher[0].kernel"),
    "teacher-bias-inf": (TEACHER, "bias = [0.5]", "bias = [inf]", "data.teacher[0].bias"),
    "teacher-X-minus-inf": (TEACHER, "X = [[1.0, 2.0], [3.0, 4.0]]", "X = [[1.0, 2.0], [-inf, 4.0]]", "data.X"),
    "xor-margin-nan": (XOR, "seed = 0", "seed = 0\nmargin = nan", "data.margin"),
    "initializer-mean-inf": (XOR, '{ name = "normal", seed = 1 }', '{ name = "normal", seed = 1, mean = inf }',
                             "model.layers[0].initializer.mean"),
    "initializer-stddev-nan": (XOR, '{ name = "normal", seed = 1 }', '{ name = "normal", seed = 1, stddev = nan }',
                               "model.layers[0].initializer.stddev"),
    "initializer-constant-nan": (XOR, '{ name = "normal", seed = 1 }', '{ name = "constant", value = nan }',
                                 "model.layers[0].initializer.value"),
    "initializer-uniform-inf": (XOR, '{ name = "normal", seed = 1 }', '{ name = "uniform", seed = 1, maxval = +inf }',
                                "model.layers[0].initializer.maxval"),
    "bias-initializer-nan": (XOR, '{ name = "normal", seed = 1 }',
                             '{ name = "normal", seed = 1 }\nbias_initializer = { name = "constant", value = -inf }',
                             "model.layers[0].bias_initializer.value"),
}


@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_numbers_are_refused(tmp_path, capsys, case):
    base, old, new, field = NON_FINITE[case]
    path = write(tmp_path, edit(base, old, new))
    refused(run_argv(path), capsys, file=path, field=field, expected="a finite number")


@pytest.mark.parametrize("options, field", [("stddev = -1.0", "stddev"), ("minval = 1.0, maxval = 0.0", "minval"),
                                            ("minval = -1e308, maxval = 1e308", "maxval")])
def test_initializer_options_numpy_would_refuse_while_drawing_are_refused_on_load(tmp_path, capsys, options, field):
    name = "normal" if "stddev" in options else "uniform"
    path = write(tmp_path, edit(XOR, '{ name = "normal", seed = 1 }', f'{{ name = "{name}", seed = 1, {options} }}'))
    refused(run_argv(path), capsys, file=path, field=f"model.layers[0].initializer.{field}", expected="")


# --- nan where a lab prints it: one rule for lab values and answer keys -------------

def test_a_lab_value_nan_against_a_finite_reference_value_is_a_mismatch(tmp_path, capsys):
    lab = '\n[[lab_values]]\nwhat = "params"\nparam = "layers.0.kernel"\nvalue = [[nan], [nan]]\natol = 0.0\n'
    path = write(tmp_path, SCENARIO + lab)
    [scenario] = load_scenarios(path)
    [check] = run_scenario(scenario, frameworks=("numpy",), dtypes=("float64",)).lab_checks
    assert np.all(np.isfinite(check.computed))
    assert not check.ok and check.max_abs_diff == np.inf
    assert main(run_argv(path)) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_a_lab_value_nan_matches_a_diverged_run():
    """minibatch-diverging prints nan for every final parameter: the reference goes nan and matches."""
    scenario = resolve("minibatch-diverging")
    result = run_scenario(scenario, frameworks=("numpy",), dtypes=("float64",))
    nan_checks = [c for c in result.lab_checks if np.all(np.isnan(c.lab.value))]
    assert nan_checks and all(c.ok for c in nan_checks)


def nan_key(expected: str, fields: str = 'compute = "activation"\nfunction = "tanh"\nz = [[1]]') -> str:
    return f'title = "nan"\n[[answer]]\nid = "a"\n{fields}\nexpected = {expected}\n'


@pytest.mark.parametrize("expected", ['"[[nan]]"', "[[nan]]"])
def test_a_key_printing_nan_for_a_finite_value_is_wrong_not_implausible(tmp_path, expected):
    [entry] = load_key(write(tmp_path, nan_key(expected))).entries
    result = check_entry(entry, frameworks=("numpy",))
    assert result.verdict == "wrong", result.message
    assert result.parts[0].max_abs_diff == np.inf


def test_the_check_command_exits_1_on_a_printed_nan_against_a_number(tmp_path, capsys):
    path = write(tmp_path, nan_key('"[[nan]]"'))
    assert main(check_argv(path)) == 1
    captured = capsys.readouterr()
    assert "a: wrong" in captured.err and "Traceback" not in captured.err


def non_finite_class(values: np.ndarray) -> str:
    """"nan", "inf" or "-inf": what a one-element non-finite answer prints; "finite" otherwise."""
    [v] = np.asarray(values, dtype=np.float64).ravel()
    return "finite" if np.isfinite(v) else "nan" if np.isnan(v) else "inf" if v > 0 else "-inf"


# Overflowing inputs whose exact value is itself beyond float64 (exp(1000)): the answer is the same
# non-finite class on every kernel, and a key is correct exactly when it prints that class (the
# documented rule: a nan matches only a nan, an inf only the same inf), never when it prints another.
# An exact value that is finite but overflows in some summation order ([[1e308, -1e308]] @ [[1e308],
# [1e308]] is 0: inf with a fused multiply-add, nan without) is order-dependent, every non-finite
# class one class: tests/test_answers_overflow.py, under two kernels.
OVERFLOWING = {
    "exponential-of-1000": 'compute = "activation"\nfunction = "exponential"\nz = [[1000]]',
}


@pytest.mark.parametrize("printed", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("fields", OVERFLOWING.values(), ids=OVERFLOWING.keys())
def test_a_key_printing_nan_or_inf_matches_the_same_computed_value(tmp_path, fields, printed):
    [entry] = load_key(write(tmp_path, nan_key(f'"[[{printed}]]"', fields))).entries
    with np.errstate(over="ignore", invalid="ignore"):
        result = check_entry(entry, frameworks=("numpy",))
    [part] = result.parts
    computed = non_finite_class(part.computed)
    assert computed in ("nan", "inf", "-inf"), part.computed
    # another class is wrong (or implausible first: an exponential's -inf is outside [0, inf])
    refused = "implausible" if implausible(entry.question, entry.expected) else "wrong"
    assert result.verdict == ("correct" if printed == computed else refused), (printed, computed, result.message)
    assert part.max_abs_diff == (0.0 if printed == computed else np.inf)


def test_plausibility_no_longer_special_cases_nan_but_keeps_its_bounds(tmp_path):
    [entry] = load_key(write(tmp_path, nan_key('"[[nan]]"', 'compute = "activation"\nfunction = "sigmoid"\n'
                                                            "z = [[1]]"))).entries
    assert implausible(entry.question, {"value": parse_printed("[[nan]]")}) is None
    assert "outside [0, 1]" in (implausible(entry.question, {"value": parse_printed("[[1.2]]")}) or "")
    [above] = load_key(write(tmp_path, nan_key('"[[1.2]]"', 'compute = "activation"\nfunction = "sigmoid"\n'
                                                            "z = [[1]]"), "above.toml")).entries
    assert check_entry(above, frameworks=("numpy",)).verdict == "implausible"


# --- 3. files that cannot be read ----------------------------------------------------

def latin1(text: str) -> bytes:
    return edit(text, "\n", '\n# caf\u00e9\n').encode("latin-1")


UNREADABLE = {
    # case: (make the file at path from the valid text, what the line says was expected)
    "latin-1": (lambda path, text: path.write_bytes(latin1(text)), "UTF-8 text"),
    "utf-16-with-bom": (lambda path, text: path.write_bytes(text.encode("utf-16")), "UTF-8 text"),
    "utf-16-be-with-bom": (lambda path, text: path.write_bytes(b"\xfe\xff" + text.encode("utf-16-be")), "UTF-8 text"),
    "binary": (lambda path, text: path.write_bytes(bytes(range(256)) * 4), "UTF-8 text file"),
    "png-header": (lambda path, text: path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "UTF-8 text"),
    "directory": (lambda path, text: path.mkdir(), "a directory"),
    "nested-5000-deep": (lambda path, text: path.write_text(text + "x = " + "[" * 5000 + "]" * 5000 + "\n"),
                         "nested at most 64 levels deep"),
    "nested-100-deep-table": (lambda path, text: path.write_text(text + "x = " + "{ a = " * 100 + "1" + " }" * 100),
                              "nested at most 64 levels deep"),
}
LOADERS = {"scenario": (SCENARIO, run_argv), "key": (KEY, check_argv)}


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_a_file_that_cannot_be_read_is_one_line(tmp_path, capsys, loader, case):
    make, expected = UNREADABLE[case]
    text, argv = LOADERS[loader]
    path = tmp_path / "input.toml"
    make(path, text)
    refused(argv(path), capsys, file=path, field="", expected=expected)


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_fifo_is_refused_without_blocking(tmp_path, capsys, loader):
    path = tmp_path / "pipe.toml"
    os.mkfifo(path)
    _, argv = LOADERS[loader]
    outcome: dict[str, int] = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("code", main(argv(path))), daemon=True)
    thread.start()
    thread.join(timeout=30)
    if thread.is_alive():  # today's loader opened the FIFO and waits for a writer: release it, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=10)
        pytest.fail("the loader blocked on a FIFO")
    err = capsys.readouterr().err
    assert outcome["code"] == 2 and "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("nn-parity: error:")]
    assert line.startswith(f"nn-parity: error: {path}: expected") and "FIFO" in line


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_permission_error_while_opening_is_one_line(tmp_path, capsys, monkeypatch, loader):
    """A file without read permission (chmod 000 stops nobody when the tests run as root, as in
    CI, so opening this one file is denied by the test instead)."""
    text, argv = LOADERS[loader]
    path = write(tmp_path, text)
    real_open = os.open

    def denying_open(file: str | os.PathLike[str], flags: int, *args: int) -> int:
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, flags, *args)

    monkeypatch.setattr(os, "open", denying_open)
    refused(argv(path), capsys, file=path, field="", expected="readable")


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_utf8_byte_order_mark_is_accepted(tmp_path, loader):
    text, _ = LOADERS[loader]
    path = write(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8"))
    if loader == "scenario":
        assert [s.name for s in load_scenarios(path)] == ["tiny"]
    else:
        assert [e.id for e in load_key(path).entries] == ["a"]


def test_both_loaders_read_through_one_function():
    assert key_file.read_toml is scenario_module.read_toml


def test_an_error_line_stays_one_line_whatever_the_field_holds():
    message = BadInput("a\nb.toml", "x\ny", "z\r\u2028w", "v\nw").one_line()
    assert len(message.splitlines()) == 1 and "\n" not in message and "\\n" in message


def test_a_toml_key_with_a_newline_is_named_on_one_line(tmp_path, capsys):
    path = write(tmp_path, SCENARIO + '"bad\\nfield" = 1\n')
    line = refused(run_argv(path), capsys, file=path, field="bad\\nfield", expected="one of the known fields")
    assert "\\n" in line


# --- 4. fields the loader missed ----------------------------------------------------

SEED = 2 ** 32
SEEDS = {
    "xor": (XOR, "seed = 0", f"seed = {SEED}", "data.seed"),
    "sine-surface": (edit(XOR, 'generator = "xor"\nseed = 0\nn_train = 8\nn_validation = 0\nn_test = 0',
                          'generator = "sine-surface"\nn = 8\nseed = 0'), "seed = 0", f"seed = {SEED}", "data.seed"),
    "teacher": (edit(TEACHER, "X = [[1.0, 2.0], [3.0, 4.0]]", "n = 4\nseed = 0"), "seed = 0", f"seed = {SEED}",
                "data.seed"),
    "initializer": (XOR, '{ name = "normal", seed = 1 }', f'{{ name = "normal", seed = {SEED} }}',
                    "model.layers[0].initializer.seed"),
    "bias-initializer": (XOR, '{ name = "normal", seed = 1 }',
                         f'{{ name = "normal", seed = 1 }}\nbias_initializer = {{ name = "uniform", seed = {SEED} }}',
                         "model.layers[0].bias_initializer.seed"),
    "shuffle": (SCENARIO, "epochs = 3", f"epochs = 3\nshuffle = true\nshuffle_seed = {SEED}", "training.shuffle_seed"),
    "negative": (XOR, "seed = 0", "seed = -1", "data.seed"),
}


@pytest.mark.parametrize("case", sorted(SEEDS))
def test_a_seed_numpy_cannot_take_is_refused(tmp_path, capsys, case):
    base, old, new, field = SEEDS[case]
    assert load_scenarios(write(tmp_path, base, "valid.toml"))  # the base itself loads
    path = write(tmp_path, edit(base, old, new))
    refused(run_argv(path), capsys, file=path, field=field, expected="[0, 2**32 - 1]")


def test_the_largest_seed_is_fine(tmp_path):
    [scenario] = load_scenarios(write(tmp_path, edit(XOR, "seed = 0", f"seed = {SEED - 1}")))
    assert scenario.data.options["seed"] == SEED - 1


TARGETS = {
    "training-y-two-columns": (SCENARIO, "y = [[1.0], [2.0]]", "y = [[1.0, 0.0], [2.0, 0.0]]", "data.y"),
    "forward-y-one-column": (FORWARD, "X = [[1.0, 2.0], [3.0, 4.0]]", "X = [[1.0, 2.0], [3.0, 4.0]]\ny = [[1], [0]]",
                             "data.y"),
    "teacher-two-outputs": (TEACHER, "kernel = [[0.25], [0.75]]\nbias = [0.5]",
                            "kernel = [[0.25, 1.0], [0.75, 1.0]]", "data.teacher[0].kernel"),
    "xor-two-units": (XOR, "units = 1", "units = 2", "model.layers[0].units"),
}


@pytest.mark.parametrize("case", sorted(TARGETS))
def test_targets_must_have_one_column_per_output(tmp_path, capsys, case):
    base, old, new, field = TARGETS[case]
    path = write(tmp_path, edit(base, old, new))
    refused(run_argv(path), capsys, file=path, field=field, expected="")


def test_a_forward_only_scenario_may_still_omit_y(tmp_path):
    [scenario] = load_scenarios(write(tmp_path, FORWARD))
    assert scenario.data.y is not None and scenario.data.y.shape == (2, 0)


def test_a_training_scenario_needs_targets_with_columns(tmp_path, capsys):
    path = write(tmp_path, edit(SCENARIO, "y = [[1.0], [2.0]]", "y = [[], []]"))
    refused(run_argv(path), capsys, file=path, field="data.y", expected="1 column (model.layers[0].units = 1")


@pytest.mark.parametrize("axis", [2, -3, 100])
def test_a_softmax_axis_outside_the_layer_output_is_refused(tmp_path, capsys, axis):
    path = write(tmp_path, edit(FORWARD, 'activation = "softmax"', f'activation = "softmax"\naxis = {axis}'))
    refused(run_argv(path), capsys, file=path, field="model.layers[0].axis", expected="-2, -1, 0 or 1")


@pytest.mark.parametrize("axis", [-2, -1, 0, 1])
def test_every_axis_of_the_layer_output_is_fine(tmp_path, axis):
    [scenario] = load_scenarios(write(tmp_path, edit(FORWARD, 'activation = "softmax"',
                                                     f'activation = "softmax"\naxis = {axis}')))
    assert scenario.layers[0].axis == axis


def lab(what: str, step: int | str, value: str, extra: str = "") -> str:
    step_line = f'step = "{step}"' if step == "final" else f"step = {step}"
    return f'\n[[lab_values]]\nwhat = "{what}"\n{step_line}\nvalue = {value}\natol = 0.001\n{extra}'


KERNEL = 'param = "layers.0.kernel"'
STEPS = {
    # case: (text, reachable); SCENARIO makes 3 steps (0, 1, 2), FORWARD none
    "params-at-the-last-step": (SCENARIO + lab("params", 2, "[[0.5], [0.5]]", KERNEL), True),
    "params-final": (SCENARIO + lab("params", "final", "[[0.5], [0.5]]", KERNEL), True),
    "params-one-beyond": (SCENARIO + lab("params", 3, "[[0.5], [0.5]]", KERNEL), False),
    "gradient-far-beyond": (SCENARIO + lab("gradient", 7, "[[0.5], [0.5]]", KERNEL), False),
    "loss-one-beyond": (SCENARIO + lab("loss", 3, "[1.0]"), False),
    "output-at-the-step-count-is-the-final-output": (SCENARIO + lab("output", 3, "[[1.5], [3.5]]"), True),
    "output-one-beyond": (SCENARIO + lab("output", 4, "[[1.5], [3.5]]"), False),
    "batches-of-one-last-step": (edit(SCENARIO, 'batch_size = "full"', "batch_size = 1")
                                 + lab("loss", 5, "[1.0]"), True),
    "batches-of-one-beyond": (edit(SCENARIO, 'batch_size = "full"', "batch_size = 1") + lab("loss", 6, "[1.0]"), False),
    "forward-only-output-at-0": (FORWARD + lab("output", 0, "[[0.5, 0.5], [0.5, 0.5]]"), True),
    "forward-only-output-at-1": (FORWARD + lab("output", 1, "[[0.5, 0.5], [0.5, 0.5]]"), False),
}


@pytest.mark.parametrize("case", sorted(STEPS))
def test_a_lab_value_at_a_step_the_run_never_reaches_is_refused(tmp_path, capsys, case):
    text, reachable = STEPS[case]
    path = write(tmp_path, text)
    if reachable:
        assert load_scenarios(path)
    else:
        refused(run_argv(path), capsys, file=path, field="lab_values[0].step", expected='"final" or a step in [0, ')


@pytest.mark.parametrize("text, field", [
    (SCENARIO + lab("loss", 0, "[1.0, 2.0]"), "lab_values[0].value"),
    (SCENARIO + lab("output", 0, "[1.5, 3.5, 4.0]"), "lab_values[0].value"),
    (SCENARIO + "\n[[variants]]\nname = \"v\"\nlab_values = 5\n", "variants[0].lab_values"),
    (SCENARIO + "lab_values = 5\n[[variants]]\nname = \"v\"\n", "lab_values"),
])
def test_lab_values_that_could_never_be_compared_are_refused(tmp_path, capsys, text, field):
    path = write(tmp_path, text)
    refused(run_argv(path), capsys, file=path, field=field, expected="")


# --- answer keys: the same field rules ------------------------------------------------

def answer(fields: str, answer_id: str = "a") -> str:
    return f'title = "hostile"\n[[answer]]\nid = "{answer_id}"\n{fields}\n'


DENSE = 'compute = "dense"\nX = [[1, 2], [2, 1]]\nw = [[1], [1]]\nb = [[0], [0]]'
TRAIN = ('compute = "train"\nX = [[2], [3]]\ny = [[7], [10]]\nw = [[1]]\nb = [0]\nloss = "mse"\n'
         'optimizer = { name = "sgd", learning_rate = 0.01 }\nsteps = 1')
KEY_FIELDS = {
    # case: (the answer's fields, field, expected)
    "X-nan": (edit(DENSE, "X = [[1, 2]", "X = [[1, nan]"), "answer[a].X", "a finite number"),
    "w-inf": (edit(DENSE, "w = [[1], [1]]", "w = [[inf], [1]]"), "answer[a].w", "a finite number"),
    "b-minus-inf": (edit(DENSE, "b = [[0], [0]]", "b = [[0], [-inf]]"), "answer[a].b", "a finite number"),
    "X-huge-integer": (edit(DENSE, "X = [[1, 2]", f"X = [[1{'0' * 400}, 2]"), "answer[a].X", "a finite number"),
    "z-nan": ('compute = "activation"\nfunction = "relu"\nz = [[nan]]', "answer[a].z", "a finite number"),
    "y-pred-inf": ('compute = "loss"\nloss = "mse"\ny_true = [1.0]\ny_pred = [inf]', "answer[a].y_pred",
                   "a finite number"),
    "train-y-nan": (edit(TRAIN, "y = [[7], [10]]", "y = [[7], [nan]]"), "answer[a].y", "a finite number"),
    "learning-rate-inf": (edit(TRAIN, "learning_rate = 0.01", "learning_rate = inf"),
                          "answer[a].optimizer.learning_rate", "a finite number"),
    "adam-beta-nan": (edit(TRAIN, '{ name = "sgd", learning_rate = 0.01 }',
                           '{ name = "adam", learning_rate = 0.01, beta_2 = nan, convention = "keras" }'),
                      "answer[a].optimizer.beta_2", "a finite number"),
    "rtol-nan": (DENSE + "\nrtol = nan", "answer[a].rtol", "a finite number"),
    "atol-inf": (DENSE + "\natol = inf", "answer[a].atol", "a finite number"),
    "dense-axis": (DENSE + "\naxis = 2", "answer[a].axis", "-2, -1, 0 or 1"),
    "network-layer-axis": ('compute = "network"\nX = [[1, 2]]\n'
                           'layers = [{ w = [[1, 0], [0, 1]], activation = "softmax", axis = -3 }]',
                           "answer[a].layers[0].axis", "-2, -1, 0 or 1"),
    "scenario-step-beyond": ('compute = "scenario"\nscenario = "softmax-classifier"\nquantity = "params"\n'
                             "step = 200", "answer[a].step", '"final" or a step in [0, 199]'),
    "scenario-output-beyond": ('compute = "scenario"\nscenario = "softmax-classifier"\nquantity = "output"\n'
                               "step = 201", "answer[a].step", '"final" or a step in [0, 200]'),
    "forward-only-loss": ('compute = "scenario"\nscenario = "calculate-z-example"\nquantity = "loss"',
                          "answer[a].quantity", "forward-only"),
}


@pytest.mark.parametrize("case", sorted(KEY_FIELDS))
def test_an_answer_key_field_is_refused_naming_the_answer_and_field(tmp_path, capsys, case):
    fields, field, expected = KEY_FIELDS[case]
    path = write(tmp_path, answer(fields))
    refused(check_argv(path), capsys, file=path, field=field, expected=expected)


def test_a_key_defaults_nan_is_refused(tmp_path, capsys):
    path = write(tmp_path, 'title = "x"\n[defaults]\natol = nan\n' + answer(DENSE).split("\n", 1)[1])
    refused(check_argv(path), capsys, file=path, field="defaults.atol", expected="a finite number")


def test_a_key_naming_a_scenario_with_a_bad_seed_is_refused(tmp_path, capsys):
    write(tmp_path, edit(XOR, "seed = 0", f"seed = {SEED}"), "seeded.toml")
    path = write(tmp_path, answer('compute = "scenario"\nscenario = "seeded.toml"\nquantity = "loss"\nstep = 0'))
    line = refused(check_argv(path), capsys, file=path, field="answer[a].scenario", expected="")
    assert "data.seed" in line and "[0, 2**32 - 1]" in line


@pytest.mark.parametrize("raw_id", ['"a\\nb"', '"a|b"', f'"{"x" * 121}"'])
def test_an_answer_id_must_be_one_table_cell(tmp_path, capsys, raw_id):
    path = write(tmp_path, f'title = "x"\n[[answer]]\nid = {raw_id}\n{DENSE}\n')
    refused(check_argv(path), capsys, file=path, field="answer[#1].id", expected="one line")


def test_the_error_line_format_is_file_field_expected_received(tmp_path, capsys):
    path = write(tmp_path, edit(SCENARIO, "learning_rate = 0.01", "learning_rate = nan"))
    line = refused(run_argv(path), capsys, file=path, field="training.optimizer.learning_rate",
                   expected="a finite number")
    assert re.fullmatch(rf"nn-parity: error: {re.escape(str(path))}: training\.optimizer\.learning_rate: "
                        r"expected a finite number; received nan", line), line

