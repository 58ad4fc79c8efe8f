"""How runs are made: ``--jobs`` and the run cache change the time, never the result.

Real CLI calls, real Keras and torch workers: the same scenario reported with one run at a time,
with the frameworks computing at the same time, and again from a warm cache gives byte-identical
reports and JSON (timings aside); a warm cache runs no framework at all. What the cache's key
sees and how its entries are kept: ``test_cache.py``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.commands.cli import main
from harness.run.adapters.workers import has_worker, stop_all

pytestmark = pytest.mark.slow  # real framework runs

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
TINY = SCENARIOS / "tiny-mlp.toml"


def report_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.endswith(".timings.tsv")}


def test_jobs_and_the_cache_give_the_same_bytes(tmp_path, capsys, json_without_timings):
    cache = tmp_path / "cache"
    outs = {}
    for name, options in {"serial": ["--jobs", "1", "--no-cache"], "parallel": ["--jobs", "2", "--no-cache"],
                          "cold": ["--jobs", "2", "--cache", str(cache)],
                          "warm": ["--jobs", "2", "--cache", str(cache)]}.items():
        if name == "warm":
            stop_all()  # a warm cache must not need a framework: no worker may start
        out = tmp_path / name
        assert main(["report", "--scenario", str(TINY), "--out", str(out), "--quiet", *options]) == 0
        outs[name] = report_files(out)
        if name == "warm":
            assert not has_worker("keras") and not has_worker("torch")
        assert main(["run", str(TINY), "--json", str(tmp_path / f"{name}.json"), "--quiet", *options]) == 0
    capsys.readouterr()
    assert outs["serial"] == outs["parallel"] == outs["cold"] == outs["warm"]
    assert len(outs["serial"]) >= 4  # the report, its two plots, the index
    runs = {name: json_without_timings(tmp_path / f"{name}.json") for name in outs}
    assert runs["serial"] == runs["parallel"] == runs["cold"] == runs["warm"]
    assert list(cache.rglob("*.npz"))  # --cache DIR holds the runs
