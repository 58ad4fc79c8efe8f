"""Options refused where they are parsed (issue 25, item 6): exit 2 and one line naming the
option, before anything runs: a ``--timeout`` beyond a week (1e10 was accepted, then every run
was reported crashed by an OverflowError blamed on the frameworks) and a ``--address`` that is
no Ray address (a ValueError traceback from inside Ray) or one where nothing listens (Ray
waited for ever: issue 25, item 5). And a broken file elsewhere in the
catalogue (``NN_PARITY_SCENARIOS``) no longer makes a valid catalogue name fail."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from harness.commands.args import MAX_SECONDS
from harness.commands.cli import main
from harness.run.adapters.ray_executor import missing

TINY = str(Path(__file__).resolve().parent / "scenarios" / "tiny-linear.toml")
AUDIT = str(Path(__file__).resolve().parent.parent / "scenarios" / "keys" / "audits" / "xor-relu-sigmoid.toml")


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured
    return captured.err.strip()


@pytest.mark.parametrize("value", ["1e10", "inf", "nan", "0", "-1", str(MAX_SECONDS + 1)])
@pytest.mark.parametrize("command", [["run", TINY, "--frameworks", "numpy"],
                                     ["audit", "x.py", "--function", "f", "--scenario", AUDIT]])
def test_a_timeout_beyond_the_bound_is_refused(capsys, command: list[str], value: str) -> None:
    err = _refused(capsys, [*command, "--timeout", value])
    assert err == (f"nn-parity {command[0]}: error: argument --timeout: expected a positive number of seconds, at "
                   f"most {MAX_SECONDS} (a week); received {value!r}")


def test_the_bound_itself_is_accepted(capsys) -> None:
    assert main(["run", TINY, "--frameworks", "numpy", "--quiet", "--timeout", str(MAX_SECONDS)]) == 0


@pytest.mark.parametrize("address", ["not an address", "127.0.0.1", "host:0", "host:65536", "http://host:1", ""])
def test_a_ray_address_of_no_known_form_is_refused_before_ray_starts(capsys, address: str) -> None:
    err = _refused(capsys, ["run", TINY, "--frameworks", "numpy", "--executor", "ray", "--address", address])
    assert err == ("nn-parity run: error: argument --address: expected auto, HOST:PORT or ray://HOST:PORT (a port "
                   f"1-65535); received {address!r}")


def test_a_broken_unrelated_catalogue_file_does_not_hide_a_valid_name(tmp_path: Path, monkeypatch, capsys) -> None:
    """``NN_PARITY_SCENARIOS`` holding a broken file sorted before a valid one: the valid name runs; a
    name found nowhere says which files could not be read."""
    (tmp_path / "a-broken.toml").write_text("name = [unclosed\n")
    (tmp_path / "tiny.toml").write_text(Path(TINY).read_text())
    monkeypatch.setenv("NN_PARITY_SCENARIOS", str(tmp_path))
    assert main(["run", "tiny", "--frameworks", "numpy", "--quiet"]) == 0
    capsys.readouterr()
    err = _refused(capsys, ["run", "no-such-name", "--frameworks", "numpy"])
    assert err.startswith("nn-parity: error: no-such-name: expected a scenario file or one of the catalogue names "
                          "['tiny'] (catalogue files not read: ")
    assert f"{tmp_path / 'a-broken.toml'}: expected valid TOML" in err


def test_a_ray_address_where_nothing_listens_is_refused_not_waited_on(capsys) -> None:
    """Ray waits for ever on a cluster address where nothing listens; the harness tries the address
    first (a port this test has just freed) and refuses it in one line, before Ray starts."""
    if missing() is not None:
        pytest.skip(f"the Ray executor is not installed: {missing()}")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    start = time.monotonic()
    err = _refused(capsys, ["run", TINY, "--frameworks", "numpy", "--executor", "ray", "--address",
                            f"127.0.0.1:{port}"])
    assert err.startswith(f"nn-parity: error: nn-parity: --address: expected the address of a running Ray cluster; "
                          f"received '127.0.0.1:{port}: nothing answers there"), err
    assert time.monotonic() - start < 60
