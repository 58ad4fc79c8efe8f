"""No output overwrites an input or another output (issue 25, items 4 and 6): every command's
output files go through ``harness.render.files.check_output_files`` before any work; a path that
is one of the command's inputs (a submission, the scenario file, the adapter, the answer key; a
symlink or hard link to one too) or another output's file is exit 2 with one line naming the
option, and the input is untouched. A file that cannot be written is named itself, not its folder."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from harness.answers.batch import collect
from harness.commands.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "keys" / "audits" / "xor-relu-sigmoid.toml"
TINY = Path(__file__).resolve().parent / "scenarios" / "tiny-linear.toml"
SUBMISSION = "def backward(params, X, y):\n    raise RuntimeError('never run: refused before')\n"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subs").mkdir()
    for name in ("alice", "bob"):
        (tmp_path / "subs" / f"{name}.py").write_text(SUBMISSION)
    shutil.copy(SCENARIO, tmp_path / "audit.toml")
    shutil.copy(TINY, tmp_path / "tiny.toml")
    (tmp_path / "adapter.py").write_text("backward = backward\n")
    os.symlink("subs/bob.py", tmp_path / "link-to-bob.py")
    os.link(tmp_path / "subs" / "alice.py", tmp_path / "hard-alice.txt")
    return tmp_path


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nn-parity: error: ") and "Traceback" not in err, err
    return err.strip()


AUDIT = ["audit", "--function", "backward", "--scenario", "audit.toml", "--quiet"]


@pytest.mark.parametrize(("argv", "expected"), [
    (AUDIT + ["subs", "--csv", "subs/alice.py"],
     "subs/alice.py: --csv: expected a path that is not one of the command's inputs; received 'subs/alice.py'"),
    (AUDIT + ["subs/alice.py", "--json", "subs/alice.py"], "subs/alice.py: --json: expected a path that is not one"),
    (AUDIT + ["subs", "--json", "audit.toml"], "audit.toml: --json: expected a path that is not one of the command's "
                                               "inputs; received 'audit.toml'"),
    (AUDIT + ["subs", "--adapter", "adapter.py", "--csv", "adapter.py"], "adapter.py: --csv: expected a path that"),
    (AUDIT + ["subs", "--csv", "link-to-bob.py"], "link-to-bob.py: --csv: expected a path that is not one of the "
                                                  "command's inputs; received 'subs/bob.py'"),
    (AUDIT + ["subs", "--csv", "hard-alice.txt"], "hard-alice.txt: --csv: expected a path that is not one"),
    (AUDIT + ["subs", "--json", "out.txt", "--csv", "out.txt"],
     "out.txt: --csv: expected a file other than --json's; received 'the same file'"),
    (AUDIT + ["subs/alice.py", "--json", "out.txt", "--gradescope", "./sub/../out.txt"],
     "./sub/../out.txt: --gradescope: expected a file other than --json's"),
    (["run", "tiny.toml", "--frameworks", "numpy", "--quiet", "--json", "tiny.toml"],
     "tiny.toml: --json: expected a path that is not one of the command's inputs; received 'tiny.toml'"),
])
def test_an_output_that_is_an_input_or_another_output_is_refused(workspace: Path, capsys, argv: list[str],
                                                                   expected: str) -> None:
    before = {p: p.read_bytes() for p in workspace.rglob("*") if p.is_file()}
    assert _refused(capsys, argv).startswith(f"nn-parity: error: {expected}")
    after = {p: p.read_bytes() for p in workspace.rglob("*") if p.is_file()}
    assert after == before  # nothing overwritten, nothing written


def test_check_refuses_its_key_as_an_output(workspace: Path, capsys) -> None:
    key = ROOT / "scenarios" / "keys" / "003-exercises.toml"
    shutil.copy(key, workspace / "key.toml")
    before = (workspace / "key.toml").read_bytes()
    assert _refused(capsys, ["check", "key.toml", "--frameworks", "numpy", "--markdown", "key.toml"]).startswith(
        "nn-parity: error: key.toml: --markdown: expected a path that is not one of the command's inputs")
    assert (workspace / "key.toml").read_bytes() == before


def test_an_output_that_cannot_be_written_is_named_before_anything_runs(workspace: Path, capsys) -> None:
    """/proc passes a permission check as root but holds no new file: the file is named, not /proc."""
    err = _refused(capsys, ["run", "tiny.toml", "--frameworks", "numpy", "--quiet", "--json", "/proc/nn-parity.json"])
    assert err.startswith("nn-parity: error: /proc/nn-parity.json: --json: expected "), err
    assert capsys.readouterr().out == ""  # refused before the run


@pytest.mark.slow  # the audit computes the independent gradients: Keras and torch start in their workers
def test_a_dangling_or_looping_symlink_in_an_audited_folder_is_a_row(workspace: Path, capsys) -> None:
    """Never dropped silently: each is a crashed row naming why it cannot be read; exit 1."""
    os.symlink("nowhere.py", workspace / "subs" / "dangling.py")
    os.symlink("loop.py", workspace / "subs" / "loop.py")
    os.symlink("other.ipynb", workspace / "subs" / "cycle.ipynb")
    os.symlink("cycle.ipynb", workspace / "subs" / "other.ipynb")
    (workspace / "subs" / "bob.py").unlink()
    assert main(AUDIT + ["subs", "--csv", "grades.csv", "--jobs", "1"]) == 1
    rows = {line.split(",")[0]: line for line in (workspace / "grades.csv").read_text().splitlines()[1:]}
    assert set(rows) == {"subs/alice.py", "subs/dangling.py", "subs/loop.py", "subs/cycle.ipynb", "subs/other.ipynb"}
    assert all(",crashed," in row for row in rows.values()), rows
    assert "no such file" in rows["subs/dangling.py"]
    assert "symbolic links" in rows["subs/loop.py"] and "symbolic links" in rows["subs/cycle.ipynb"], rows
    assert "Traceback" not in capsys.readouterr().err


def test_a_recursive_pattern_does_not_walk_symlink_loops(workspace: Path) -> None:
    """Two symlinks to their own folder made ``audit 'subs/**/*.py'`` walk 2**40 paths (killed at
    90 s); ``**`` does not enter a symlinked folder, hidden folders stay out as with ``glob``."""
    os.symlink(".", workspace / "subs" / "again")
    os.symlink(".", workspace / "subs" / "and-again")
    (workspace / "subs" / "deep" / ".hidden").mkdir(parents=True)
    (workspace / "subs" / "deep" / "carol.py").write_text(SUBMISSION)
    (workspace / "subs" / "deep" / ".hidden" / "dave.py").write_text(SUBMISSION)
    start = time.monotonic()
    assert collect(["subs/**/*.py"]) == [Path("subs/alice.py"), Path("subs/bob.py"), Path("subs/deep/carol.py")]
    assert collect([str(workspace / "subs" / "*.py")]) == [workspace / "subs" / "alice.py",
                                                           workspace / "subs" / "bob.py"]
    assert time.monotonic() - start < 5
