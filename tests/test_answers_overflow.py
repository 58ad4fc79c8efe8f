"""An answer whose exact value is finite but whose float64 sum overflows in some order
(``harness.answers.overflow``): the same verdict whatever the BLAS kernel sums in.

``[[1e308, -1e308]] @ [[1e308], [1e308]]`` is exactly 0; numpy's OpenBLAS gives inf with its
SkylakeX kernel (a fused multiply-add) and nan with Haswell's, Keras and torch give nan. Every
non-finite class is one class there, "overflow (order-dependent)", for the key and for the
implementations; a finite printed value no order gives is wrong. The kernels are compared in
child processes (``OPENBLAS_CORETYPE`` is read once, when OpenBLAS loads).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import harness.answers.verdicts as verdicts
from harness.answers.key_file import load_key
from harness.answers.overflow import order_dependence
from harness.answers.verdicts import check_entry

ROOT = Path(__file__).resolve().parents[1]
CANCELS = 'compute = "dense"\nX = [[1e308, -1e308]]\nw = [[1e308], [1e308]]'
ANSWERS = {  # id: (fields, expected, verdict on every kernel)
    "nan": (CANCELS, '"[[nan]]"', "correct"),
    "inf": (CANCELS, '"[[inf]]"', "correct"),
    "minus-inf": (CANCELS, '"[[-inf]]"', "correct"),
    "exact-zero": (CANCELS, '"[[0.]]"', "wrong"),  # no order gives 0: a product overflows
    "a-number": (CANCELS, '"[[3.]]"', "wrong"),
    # through a sigmoid: sigmoid(nan) = nan, sigmoid(inf) = 1, sigmoid(-inf) = 0; the second row is ordinary
    "sigmoid-one": (CANCELS.replace("]]\nw", "], [1, 2]]\nw") + '\nactivation = "sigmoid"', '"[[1.], [1.]]"',
                    "correct"),
    "sigmoid-half": (CANCELS.replace("]]\nw", "], [1, 2]]\nw") + '\nactivation = "sigmoid"', '"[[0.5], [1.]]"',
                     "wrong"),
    # no product overflows: an order that avoids the overflow gives the exact value, 1e308
    "partial-sum-exact": ('compute = "dense"\nX = [[1e308, 1e308, -1e308]]\nw = [[1], [1], [1]]', '"[[1.e+308]]"',
                          "correct"),
    "partial-sum-inf": ('compute = "dense"\nX = [[1e308, 1e308, -1e308]]\nw = [[1], [1], [1]]', '"[[inf]]"',
                        "correct"),
    "partial-sum-nan": ('compute = "dense"\nX = [[1e308, 1e308, -1e308]]\nw = [[1], [1], [1]]', '"[[nan]]"',
                        "wrong"),  # the negative terms alone never overflow: no -inf, so no nan
    "network-tanh": ('compute = "network"\nX = [[1e308, -1e308]]\nlayers = [{ w = [[1e308, 1], [1e308, 1]], '
                     'activation = "tanh" }, { w = [[1], [1]] }]', '"[[1.]]"', "correct"),
}


def key_text() -> str:
    return 'title = "overflow"\n' + "".join(f'[[answer]]\nid = "{name}"\n{fields}\nexpected = {expected}\n'
                                            for name, (fields, expected, _) in ANSWERS.items())


def test_the_exact_sums_decide_which_elements_depend_on_the_order(tmp_path):
    path = tmp_path / "key.toml"
    path.write_text(key_text())
    entries = {e.id: e for e in load_key(path).entries}
    cancels = order_dependence(entries["nan"].question)
    assert cancels is not None and cancels.mask.tolist() == [[True]]
    [(where, value, classes)] = cancels.exact
    assert where == (0, 0, 0) and value == 0.0 and classes == ("nan", "inf", "-inf")
    sigmoid = order_dependence(entries["sigmoid-one"].question)
    assert sigmoid is not None and sigmoid.mask.tolist() == [[True], [False]]  # the ordinary row is judged as usual
    assert order_dependence(entries["partial-sum-exact"].question).exact[0][2] == ("exact", "inf")
    ordinary = tmp_path / "ordinary.toml"
    ordinary.write_text('title = "t"\n[[answer]]\nid = "a"\ncompute = "dense"\nX = [[1e300, 1e300]]\n'
                        'w = [[1e5], [-1e5]]\n')  # large, but no order leaves float64's range
    assert order_dependence(load_key(ordinary).entries[0].question) is None


def test_an_implementation_outside_every_order_is_still_a_harness_fault(tmp_path, monkeypatch):
    """The order-dependent class is not a blank cheque: a value no order gives (here the reference
    planted to print 7) is a disagreement."""
    real = verdicts.compute_all

    def planted(question, **kwargs):
        out = real(question, **kwargs)
        out["numpy"] = {"value": np.array([[7.0]])}
        return out

    monkeypatch.setattr(verdicts, "compute_all", planted)
    path = tmp_path / "key.toml"
    path.write_text(f'title = "t"\n[[answer]]\nid = "a"\n{CANCELS}\nexpected = "[[nan]]"\n')
    [entry] = load_key(path).entries
    result = check_entry(entry, frameworks=("numpy",))
    assert result.verdict == "harness-fault"
    assert "numpy gives 7.0 at [0, 0], which no summation order gives" in result.message


def _check_under(kernel: str, key: Path, out: Path) -> tuple[dict[str, str], str, str]:
    env = {**os.environ, "OPENBLAS_CORETYPE": kernel, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(key), "--no-cache", "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=1200, cwd=out.parent)
    report = json.loads(out.read_text())
    used = subprocess.run([sys.executable, "-c", "import numpy, threadpoolctl; "
                           "print(threadpoolctl.threadpool_info()[0].get('architecture'))"],
                          capture_output=True, text=True, env=env, timeout=300).stdout.strip()
    messages = {a["id"]: a["message"] for a in report["answers"]}
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert all("overflow (order-dependent): X @ w + b at [0, 0]" in m for m in messages.values()), messages
    return {a["id"]: (a["verdict"], a["computed_text"]) for a in report["answers"]}, used, done.stderr


@pytest.mark.slow
def test_the_verdict_is_the_same_under_every_blas_kernel(tmp_path):
    key = tmp_path / "key.toml"
    key.write_text(key_text())
    expected = {name: verdict for name, (_, _, verdict) in ANSWERS.items()}
    seen, shown = {}, {}
    for kernel in ("SkylakeX", "Haswell"):
        answers, used, _ = _check_under(kernel, key, tmp_path / f"{kernel}.json")
        assert {name: verdict for name, (verdict, _) in answers.items()} == expected, (kernel, used)
        seen[kernel], shown[kernel] = used, {name: text for name, (_, text) in answers.items()}
    if platform.machine() in ("x86_64", "AMD64"):  # OpenBLAS' x86 kernels: the child really used the one asked for
        assert seen["Haswell"] == "Haswell", seen  # (SkylakeX needs AVX-512: without it OpenBLAS picks another)
    assert shown["SkylakeX"] == shown["Haswell"]  # the value shown too: the first outcome
    assert shown["Haswell"]["exact-zero"] == "[[nan]]" and shown["Haswell"]["partial-sum-inf"] == "[[1.e+308]]"
