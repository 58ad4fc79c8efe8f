"""The one file writer: atomic writes, JSON without nan/inf, and a path that cannot be written
is one line naming it (exit 2) in every command that writes a file."""
from __future__ import annotations

import json

import pytest

import harness.commands.list
from harness.commands.cli import main
from harness.errors import BadInput
from harness.render.file_set import report_set
from harness.render.files import json_safe, write_files_atomic, write_json
from harness.render.header import read_index_entry


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


UNWRITABLE = {
    "run-json": ["run", "softmax-classifier", "--quiet", "--json", "{bad}/r.json"],
    "run-json-folder": ["run", "softmax-classifier", "--quiet", "--json", "{folder}"],
    "check-json": ["check", "scenarios/keys/001-lecture-notes.toml", "--json", "{bad}/k.json"],
    "check-markdown": ["check", "scenarios/keys/001-lecture-notes.toml", "--markdown", "{folder}"],
    "answers-out": ["answers", "scenarios/keys/001-lecture-notes.toml", "--out", "{bad}/k.toml"],
    "report-out-file": ["report", "--scenario", "calculate-z-example", "--quiet", "--out", "{bad}"],
    "report-out-below-file": ["report", "--scenario", "calculate-z-example", "--quiet", "--out", "{bad}/reports"],
    "bench-json-folder": ["bench", "softmax-classifier", "--json", "{folder}"],
}


@pytest.mark.parametrize("case", list(UNWRITABLE))
def test_an_unwritable_output_is_refused_before_anything_runs(tmp_path, capsys, case):
    """One line naming the path and the option, exit 2, and no work done (the commands return
    before running a framework: the whole test takes well under a second)."""
    blocker, folder = tmp_path / "file", tmp_path / "folder"
    blocker.write_text("a regular file, not a folder")
    folder.mkdir()
    argv = [a.replace("{bad}", str(blocker)).replace("{folder}", str(folder)) for a in UNWRITABLE[case]]
    code = main(argv)
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.startswith("nn-parity: error:")]
    assert code == 2 and len(err) == 1, captured.err
    assert (str(blocker) in err[0] or str(folder) in err[0]) and argv[-2] in err[0], err[0]
    assert captured.out == "" and "Traceback" not in captured.err


def test_a_file_name_cannot_leave_the_output_folder(tmp_path):
    victim = tmp_path / "victim.md"
    victim.write_text("precious")
    for name in ("../victim.md", "/tmp/victim.md", "sub/victim.md", ".hidden", ".."):
        with pytest.raises(ValueError, match="a file name inside the output folder"):
            write_files_atomic(tmp_path / "out", {name: b"overwritten"})
    assert victim.read_text() == "precious"


def test_a_set_is_committed_by_its_markdown_and_stale_members_are_removed(tmp_path):
    old = {"s.md": b"![p](s-loss-aaaaaaaaaaaa.png)", "s-loss-aaaaaaaaaaaa.png": b"old plot"}
    write_files_atomic(tmp_path, old, commit="s.md", belongs=report_set("s"))
    (tmp_path / ".s.md.abcd1234.tmp").write_bytes(b"left by a killed run")
    (tmp_path / ".other.abcd1234.tmp").write_bytes(b"not ours")
    (tmp_path / "s-extra.png").write_bytes(b"not in the set either")
    new = {"s.md": b"![p](s-loss-bbbbbbbbbbbb.png)", "s-loss-bbbbbbbbbbbb.png": b"new plot"}
    write_files_atomic(tmp_path, new, commit="s.md", belongs=report_set("s"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.abcd1234.tmp", "s-extra.png",
                                                           "s-loss-bbbbbbbbbbbb.png", "s.md"]


def test_bad_arguments_are_one_line(capsys):
    assert main(["bench", "softmax-classifier", "--repeat", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--repeat" in err[0] and "expected an integer >= 1; received '0'" in err[0]


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness.commands.list, "handle", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "nn-parity: interrupted\n"


def test_a_scenario_named_like_a_path_cannot_overwrite_a_file_beside_the_output(tmp_path, capsys):
    victim = tmp_path / "victim.md"
    victim.write_text("precious")
    scenario = tmp_path / "hostile.toml"
    scenario.write_text('name = "/../victim"\n[data]\nX = [[1.0]]\n[model]\ninput_dim = 1\n'
                        '[[model.layers]]\nunits = 1\nkernel = [[1.0]]\n')
    assert main(["report", "--scenario", str(scenario), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "hostile.toml: name: expected lowercase letters" in capsys.readouterr().err
    assert victim.read_text() == "precious" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("line", [
    '{"causes": [], "lab": "-", "name": "other", "title": "t", "verdict": "agree", "worst": "-"}',  # not its file
    '{"causes": ["a | b"], "lab": "-", "name": "x", "title": "t", "verdict": "agree", "worst": "-"}',  # a cell
    '{"causes": [], "lab": "-", "name": "x", "title": "t", "verdict": "agree"}',  # a field missing
    '{"name": "x", "oops',  # not JSON
], ids=["name-of-another-file", "pipe-in-a-cell", "missing-field", "not-json"])
def test_a_report_in_the_output_folder_that_we_did_not_write_stays_out_of_the_index(tmp_path, line):
    report = tmp_path / "x.md"
    report.write_text(f"<!-- generated -->\n<!-- nn-parity-summary: {line} -->\n")
    assert read_index_entry(report) is None
    good = '{"causes": [], "lab": "-", "name": "x", "title": "t | u", "verdict": "agree", "worst": "-"}'
    report.write_text(f"<!-- generated -->\n<!-- nn-parity-summary: {good} -->\n")
    assert read_index_entry(report)["name"] == "x"
