"""The comparisons of a run as a pandas DataFrame (``harness.testing.comparisons_frame``) and as
CSV from the CLI (``nn-parity run --csv``): the same rows, read back with pandas."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd
import pytest

from harness.commands.cli import main
from harness.pipeline import run_scenario
from harness.spec.catalogue import resolve
from harness.testing import comparisons_frame

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "tiny-linear.toml"


@pytest.mark.slow
def test_the_comparisons_as_a_dataframe_and_as_csv(tmp_path):
    result = run_scenario(resolve(str(SCENARIO)), frameworks=("numpy",), dtypes=("float64", "float32"))
    frame = comparisons_frame(result)
    assert frame.empty and "state" in frame.columns  # one implementation: nothing compared, the columns stay

    result = run_scenario(resolve(str(SCENARIO)), frameworks=("numpy", "torch"), dtypes=("float64",))
    frame = comparisons_frame(result)
    assert list(frame[["a", "b", "dtype", "state"]].itertuples(index=False, name=None)) == [
        ("numpy", "torch", "float64", "agree")]
    c = result.comparisons[0]
    assert frame.loc[0, "max_abs"] == c.max_abs and frame.loc[0, "ok"] and frame.loc[0, "steps_a"] == c.steps_a

    out = tmp_path / "pairs.csv"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(SCENARIO), "--frameworks", "numpy,torch", "--dtype", "float64", "--quiet",
                     "--no-cache", "--csv", str(out)]) == 0
    read = pd.read_csv(out)
    assert list(read.columns) == list(frame.columns)
    assert list(read[["a", "b", "dtype", "state"]].itertuples(index=False, name=None)) == [
        ("numpy", "torch", "float64", "agree")]
    assert read.loc[0, "max_abs"] == frame.loc[0, "max_abs"]  # written at full precision
