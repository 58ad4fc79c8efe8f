"""The whole catalogue under each OpenBLAS kernel: the verdicts must be identical (issue 19).

    python .ci/kernel_verdicts.py [--kernels Haswell,SkylakeX,Zen] [--scenarios A,B] [--keep DIR]

Runs every catalogue scenario (numpy, keras, torch; float64 and float32; no run cache) once per
kernel, each in a fresh process started with ``OPENBLAS_CORETYPE`` set (numpy's OpenBLAS reads it
at load), and prints: each scenario whose state, ``ok`` or any pair's state differs between kernels
(there must be none), and per scenario the worst pair's |a - b| / allowed under each kernel and
its largest change. For the scenarios that override a tolerance it also prints what their pairs
use of the default tolerance, so each override's measurement can be checked on every kernel.
Exit 1 when a verdict differs. A maintainer's measurement (about 3 x the catalogue's cold time);
the cheap, tested subset is ``make test-kernels``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.judge.compare import compare  # noqa: E402  (the checkout's harness, after the path)
from harness.pipeline import prepare, run_scenarios  # noqa: E402
from harness.render.measures import used, worst_pair  # noqa: E402  # noqa: E402
from harness.run import environment  # noqa: E402
from harness.spec.catalogue import catalogue_scenarios  # noqa: E402
from harness.spec.tolerance import DEFAULT_TOLERANCES  # noqa: E402  # noqa: E402


def measure(out: Path, names: list[str]) -> None:
    """This process's kernel: every catalogue scenario's verdicts and fractions, as JSON in ``out``."""
    scenarios = [s for s in catalogue_scenarios() if not names or s.name in names]
    results = run_scenarios([prepare(s) for s in scenarios])
    found: dict[str, object] = {"kernel": [b.get("architecture", "?") for b in environment.blas()], "scenarios": {}}
    for result in results:
        worst = worst_pair(result)
        pairs = {f"{c.pair} {c.dtype}": {"state": c.state, "used": used(c)} for c in result.comparisons}
        default_used = {}
        for c in result.comparisons:
            if result.scenario.tolerances[c.dtype] != DEFAULT_TOLERANCES[c.dtype] and c.state == "agree":
                a, b = result.runs[(c.a, c.dtype)], result.runs[(c.b, c.dtype)]
                default_used[f"{c.pair} {c.dtype}"] = used(compare(a, b, DEFAULT_TOLERANCES[c.dtype]))
        found["scenarios"][result.scenario.name] = {  # type: ignore[index]
            "state": result.state, "ok": result.ok, "pairs": pairs,
            "worst": None if worst is None else {"pair": f"{worst.pair} {worst.dtype}", "used": used(worst)},
            "default_used": default_used}
    out.write_text(json.dumps(found, indent=1, default=str))


def verdict(entry: dict) -> tuple:
    return entry["state"], entry["ok"], tuple(sorted((k, v["state"]) for k, v in entry["pairs"].items()))


def report(by_kernel: dict[str, dict]) -> int:
    kernels = list(by_kernel)
    names = sorted(set().union(*(d["scenarios"] for d in by_kernel.values())))
    changed = [n for n in names if len({verdict(by_kernel[k]["scenarios"][n]) for k in kernels}) > 1]
    described = ", ".join(f"{k} (numpy's OpenBLAS picked {by_kernel[k]['kernel']})" for k in kernels)
    print(f"kernels: {described}; {len(names)} scenarios")
    for name in changed:
        states = "; ".join(f"{k} {verdict(by_kernel[k]['scenarios'][name])}" for k in kernels)
        print(f"VERDICT CHANGES: {name}: {states}")
    print(f"verdicts identical under every kernel: {not changed}")
    rows = []
    for name in names:
        worsts = {k: by_kernel[k]["scenarios"][name]["worst"] for k in kernels}
        fractions = [w["used"] for w in worsts.values() if w is not None]
        if fractions:
            rows.append((max(fractions) - min(fractions), name, worsts))
    rows.sort(reverse=True)
    print("worst |a - b| / allowed per scenario, largest change first:")
    for change, name, worsts in rows:
        cells = ", ".join(f"{k} {w['used']:.3g} ({w['pair']})" for k, w in worsts.items() if w is not None)
        print(f"  {name}: change {change:.3g}; {cells}")
    overrides = [n for n in names if any(by_kernel[k]["scenarios"][n]["default_used"] for k in kernels)]
    for name in overrides:
        print(f"override {name}: |a - b| / allowed by the DEFAULT tolerance, worst pair per kernel:")
        for k in kernels:
            default_used = by_kernel[k]["scenarios"][name]["default_used"]
            if not default_used:  # the file had no override when this kernel's run read it
                print(f"  {k}: no override")
                continue
            pair = max(default_used, key=default_used.get)
            print(f"  {k}: {default_used[pair]:.3g} ({pair})")
    return 1 if changed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", default="Haswell,SkylakeX,Zen")
    parser.add_argument("--scenarios", default="", help="comma-separated names (default: the whole catalogue)")
    parser.add_argument("--keep", help="folder for each kernel's JSON (default: a temporary one)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child: this process's kernel into a file
    args = parser.parse_args()
    if args.measure:
        measure(Path(args.measure), [n for n in args.scenarios.split(',') if n])
        return 0
    folder = Path(args.keep or tempfile.mkdtemp(prefix="kernel-verdicts-"))
    folder.mkdir(parents=True, exist_ok=True)
    by_kernel = {}
    for kernel in args.kernels.split(","):
        out = folder / f"{kernel}.json"
        env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
        subprocess.run([sys.executable, __file__, "--measure", str(out), "--scenarios", args.scenarios], env=env,
                       check=True, cwd=ROOT)
        by_kernel[kernel] = json.loads(out.read_text())
    return report(by_kernel)


if __name__ == "__main__":
    sys.exit(main())
