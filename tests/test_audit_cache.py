"""A backward audit keeps Keras' and torch's gradients in the run cache that ``$NN_PARITY_CACHE``
names (``harness.answers.audit``): the next audit of the scenario serves them instead of starting
the frameworks, with the same verdicts and files; ``nn-parity cache verify`` makes them again and
evicts one that no longer reproduces; without the variable nothing is kept."""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.answers.audit import independent_gradients, initial_batch
from harness.commands.cli import main
from harness.run.cache import META, RunCache, use_cache
from harness.spec.catalogue import resolve

pytestmark = pytest.mark.slow  # the frameworks' workers compute the first audit's gradients

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = str(ROOT / "scenarios" / "keys" / "audits" / "xor-relu-sigmoid.toml")
BACKPROP = (ROOT / "scenarios" / "keys" / "audits" / "backprop_004.py").read_text()


def _gradient_entries(cache: Path) -> list[tuple[str, Path]]:
    """(implementation, entry) of every entry of method ``gradients``, sorted."""
    found = []
    for path in cache.rglob("*.npz"):
        with zipfile.ZipFile(path) as archive:
            about = json.loads(archive.read(META))["about"]
        if about.get("method") == "gradients":
            found.append((about["implementation"], path))
    return sorted(found)


def _doctor(path: Path) -> None:
    """Add 1e-9 to every cached gradient: the file is still a valid entry under the same key."""
    with zipfile.ZipFile(path) as archive:
        members = {i.filename: archive.read(i.filename) for i in archive.infolist()}
    for name in [n for n in members if n.endswith(".npy") and not n.startswith("plan ")]:
        out = io.BytesIO()
        np.lib.format.write_array(out, np.lib.format.read_array(io.BytesIO(members[name])) + 1e-9)
        members[name] = out.getvalue()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_the_next_audit_serves_the_frameworks_gradients_and_verify_makes_them_again(tmp_path, monkeypatch, capsys,
                                                                                    json_without_timings):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NN_PARITY_CACHE", str(cache))
    right = tmp_path / "right.py"
    right.write_text(BACKPROP + "\n\nbackward = cross_entropy_backward\n")
    audit = ["audit", str(right), "--function", "backward", "--scenario", SCENARIO]
    assert main([*audit, "--json", str(tmp_path / "made.json")]) == 0
    entries = _gradient_entries(cache)
    assert [name for name, _ in entries] == ["keras", "torch"]
    kept = [(name, os.stat(path).st_ino) for name, path in entries]
    assert main([*audit, "--json", str(tmp_path / "served.json")]) == 0
    assert [(name, os.stat(path).st_ino) for name, path in _gradient_entries(cache)] == kept  # not made again
    assert json_without_timings(tmp_path / "served.json") == json_without_timings(tmp_path / "made.json")

    scenario = resolve(SCENARIO)  # other parameters: other entries, never the kept ones
    params, X, y = initial_batch(scenario)
    with use_cache(RunCache(cache)):
        kept_grads = independent_gradients(scenario, params, X, y)
        moved = independent_gradients(scenario, {**params, "layers.0.bias": params["layers.0.bias"] + 1e-3}, X, y)
    assert [name for name, _ in _gradient_entries(cache)] == ["keras", "keras", "torch", "torch"]
    assert not np.array_equal(moved["torch"]["layers.0.kernel"], kept_grads["torch"]["layers.0.kernel"])
    capsys.readouterr()

    assert main(["cache", "verify", "--cache", str(cache)]) == 0
    assert "and 4 audits' gradients made here: all reproduce" in capsys.readouterr().out
    _doctor(entries[1][1])
    assert main(["cache", "verify", "--cache", str(cache)]) == 1
    out = capsys.readouterr().out
    assert "cached audit's gradients of torch (xor-relu-sigmoid, float64) no longer reproduces: parameter" in out
    assert [name for name, _ in _gradient_entries(cache)] == ["keras", "keras", "torch"]


def test_without_the_variable_an_audit_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("NN_PARITY_CACHE")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "right.py").write_text(BACKPROP + "\n\nbackward = cross_entropy_backward\n")
    assert main(["audit", "right.py", "--function", "backward", "--scenario", SCENARIO, "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["right.py"]
