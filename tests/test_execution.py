"""How runs are made: ``--jobs`` and the run cache change the time, never the result.

Real CLI calls, real Keras and torch workers: the same scenario reported with one run at a time,
with the frameworks computing at the same time, and again from a warm cache gives byte-identical
reports and JSON (timings aside); a warm cache runs no framework at all; a changed scenario, a
corrupt entry or a monkeypatched process never gets a stale result.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.commands.cli import main
from harness.render.plots import drawn
from harness.run.adapters import run_framework
from harness.run.adapters.workers import has_worker, inline, stop_all
from harness.run.cache import RunCache, key, use_cache
from harness.run.plan import make_plan
from harness.run.runner import run_scenario
from harness.spec.scenario import load_scenarios

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
    assert list(cache.rglob("*.pickle"))  # --cache DIR holds the runs


def test_the_cache_key_sees_every_change_and_a_bad_entry_is_not_served(tmp_path):
    [s] = load_scenarios(TINY)
    plan = make_plan(s, "float64")
    other_lr = make_plan(replace(s, training=replace(s.training, optimizer=replace(s.training.optimizer,
                                                                                   learning_rate=0.11))), "float64")
    k = key("torch", "run", plan)
    assert k != key("keras", "run", plan) and k != key("torch", "run", make_plan(s, "float32"))
    assert k != key("torch", "run", other_lr) and k != key("torch", "trace_step", plan, 1)
    assert k != key("torch", "run", replace(plan, scenario=replace(s, keep_64_bit=True)))  # a control run
    with use_cache(tmp_path) as cache:
        assert isinstance(cache, RunCache)
        first = run_framework("torch", plan)
        assert cache.get(k) is not None
        cache._path(k).write_bytes(b"not a pickle")  # a truncated entry: run again, never served
        again = run_framework("torch", plan)
        assert again.ok and (again.losses == first.losses).all()
        assert cache.get(k) is not None and cache._path(k).read_bytes() != b"not a pickle"


def test_a_monkeypatched_process_never_reads_or_writes_the_cache(tmp_path, monkeypatch):
    """Under inline() a framework class may be patched: its run must not come from, or go to, the cache."""
    [s] = load_scenarios(TINY)
    with use_cache(tmp_path):
        clean = run_scenario(s, dtypes=("float64",))
        assert clean.ok
        entries = sorted(tmp_path.rglob("*.pickle"))
        with inline():
            monkeypatch.setattr(torch.nn.Sigmoid, "forward", lambda self, x: torch.sigmoid(x) * (1 + 1e-6))
            patched = run_scenario(s, dtypes=("float64",))
        assert not patched.ok  # the patched torch really ran: a cached clean run would pass
        assert sorted(tmp_path.rglob("*.pickle")) == entries


def test_a_figure_is_drawn_once_for_the_same_numbers(tmp_path):
    """The report's figures come from the run cache when every number they show is the same; a
    changed number, or no cache, draws again."""
    result = run_scenario(load_scenarios(TINY)[0], frameworks=("numpy",), dtypes=("float64",))
    calls = []

    def loss_curves_png(r):
        calls.append(r)
        return b"png %d" % len(calls)

    with use_cache(tmp_path):
        assert drawn(loss_curves_png, result) == drawn(loss_curves_png, result) == b"png 1"
        assert len(calls) == 1
        run = result.runs[("numpy", "float64")]
        changed = replace(result, runs={("numpy", "float64"): replace(run, losses=run.losses * (1 + 1e-15))})
        assert drawn(loss_curves_png, changed) == b"png 2"
    assert drawn(loss_curves_png, result) == b"png 3"  # without a cache: drawn
