"""The one file writer: atomic writes, JSON without nan/inf, and a path that cannot be written
is one line naming it (exit 2) in every command that writes a file."""
from __future__ import annotations

import json

import pytest

from harness.commands.cli import main
from harness.errors import BadInput
from harness.render.files import json_safe, write_files_atomic, write_json


def test_atomic_write_leaves_no_partial_files(tmp_path):
    (tmp_path / "a.md").write_text("old")
    with pytest.raises(TypeError):
        write_files_atomic(tmp_path, {"a.md": b"new", "b.png": "not bytes"})  # the second write fails
    assert (tmp_path / "a.md").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.md"]


def test_json_has_no_nan_or_inf(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": [1.0, float("nan")], "b": (float("inf"), -float("inf"))})
    assert json.loads(path.read_text()) == {"a": [1.0, "nan"], "b": ["inf", "-inf"]}
    assert json_safe({"n": 2}) == {"n": 2}


def test_an_unwritable_path_is_bad_input_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, not a folder")
    with pytest.raises(BadInput) as info:
        write_json(blocker / "out.json", {})
    assert str(blocker) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("argv", [
    ["run", "softmax-classifier", "--frameworks", "numpy", "--dtype", "float64", "--quiet", "--json", "{bad}/r.json"],
    ["check", "scenarios/keys/001-lecture-notes.toml", "--frameworks", "numpy", "--json", "{bad}/k.json"],
    pytest.param(["report", "--scenario", "calculate-z-example", "--quiet", "--out", "{bad}/reports"],
                 marks=pytest.mark.slow),
], ids=["run-json", "check-json", "report-out"])
def test_every_command_reports_an_unwritable_path_in_one_line(tmp_path, capsys, argv):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, not a folder")
    code = main([a.replace("{bad}", str(blocker)) for a in argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nn-parity: error:")]
    assert code == 2 and len(err) == 1 and str(blocker) in err[0], err
