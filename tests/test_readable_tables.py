"""Readable tables (issue 22, item 6): kernels printed with their shape, tables folded to the
terminal's width on stdout (files and pipes keep them whole), a scenario's tolerance override and its
reason in its report, and "both diverged (nan)" for an explained pair whose two runs end in nan."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.commands.cli import main
from harness.judge.compare import EXPLAINED
from harness.pipeline import diagnose, run_scenario
from harness.render.measures import DIVERGED, explained_gap, final_gap
from harness.render.scenario_report import scenario_markdown
from harness.render.sentences import index_line, summary_paragraph
from harness.render.tables import final_params_table, lab_table, values
from harness.render.terminal_tables import fitted
from harness.spec.catalogue import resolve
from harness.spec.comments import tolerance_reason, tolerance_reasons
from harness.spec.scenario import load_scenarios

TINY = (Path(__file__).resolve().parent / "scenarios" / "tiny-mlp.toml").read_text()


# --- kernels with their shape ---------------------------------------------------------

def test_a_kernel_prints_nested_so_its_shape_shows():
    assert values(np.array([[0.25, 0.75], [0.5, 0.5], [0.75, 0.25]])) == "[[0.25, 0.75], [0.5, 0.5], [0.75, 0.25]]"
    assert values(np.array([[1.0]])) == "[[1]]"
    assert values(np.array([1.5, 2.0])) == "1.5, 2" and values(np.float64(3.0)) == "3"
    assert values(np.array([[np.nan, np.inf]])) == "[[nan, inf]]"


def test_final_parameters_and_lab_values_show_each_kernels_shape(tmp_path):
    (tmp_path / "tiny-mlp.toml").write_text(TINY)
    [scenario] = load_scenarios(tmp_path / "tiny-mlp.toml")
    result = run_scenario(scenario, frameworks=("numpy",), dtypes=("float64",))
    table = final_params_table(result, "float64")
    assert table is not None
    assert list(table["parameter"]) == ["layers.0.kernel (2, 3)", "layers.0.bias (3,)", "layers.1.kernel (3, 1)",
                                        "layers.1.bias (1,)"]
    kernel = table.loc[0, "numpy"]
    assert re.fullmatch(r"\[\[[^\[\]]+\], \[[^\[\]]+\]\]", kernel) and kernel.count(",") == 5  # 2 rows of 3
    assert table.loc[2, "numpy"].count("[") == 4  # (3, 1): three rows of one
    assert "[" not in table.loc[1, "numpy"]  # a bias stays a plain list
    assert list(lab_table(result)["lab printed"]) == ["0"]  # the lab's (1,) bias: a plain list


# --- folded to the terminal -------------------------------------------------------------

WIDE = pd.DataFrame([{"pair": f"numpy[keras]-numpy[torch]{i}", "dtype": "float64",
                      **{f"layers.{k}.kernel max abs": f"{k}.{i}e-03" for k in range(6)},
                      "verdict": "differ, explained: Adam epsilon placement (Keras adds epsilon-hat to sqrt(v) "
                                 "before the bias correction, torch after)"} for i in range(3)])


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_a_wide_table_is_folded_to_the_width_and_loses_nothing(width):
    text = fitted(WIDE, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    parts = [p for p in text.split("\n\n")]
    assert len(parts) > 1 and all(p.startswith("(part ") for p in parts)
    for part in parts:  # every part repeats the row keys
        assert "| pair" in part and "dtype" in part
    shown: dict[str, str] = {}  # each column's text, read back from the parts (wrapped lines joined)
    for part in parts:
        lines = [line for line in part.splitlines() if line.startswith("|")]
        rule = next(i for i, line in enumerate(lines) if line.startswith("|:"))
        columns = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
        for j in range(len(columns[0])):
            name = "".join(row[j] for row in columns[:rule]).replace(" ", "")
            shown.setdefault(name, "".join(row[j] for row in columns[rule + 1:]).replace(" ", ""))
    for column in WIDE.columns:  # wrapped onto lines, never cut
        assert shown[column.replace(" ", "")] == "".join(WIDE[column]).replace(" ", ""), column


def test_a_table_that_fits_and_a_file_keep_the_table_whole():
    whole = fitted(WIDE, width=None)
    assert "(part" not in whole and len(whole.splitlines()) == len(WIDE) + 2
    assert fitted(WIDE, width=10_000) == whole


@pytest.mark.slow
def test_run_folds_its_tables_to_columns_and_keeps_them_whole_in_a_pipe(tmp_path, capsys, monkeypatch):
    """A real `nn-parity run`: with $COLUMNS (a terminal's width) every table line fits it; its stdout
    captured (a pipe, no $COLUMNS) keeps every table whole."""
    (tmp_path / "tiny-mlp.toml").write_text(TINY)
    command = ["run", str(tmp_path / "tiny-mlp.toml"), "--frameworks", "numpy,torch", "--dtype", "float64",
               "--quiet"]
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(command) == 0
    piped = capsys.readouterr().out
    assert max(len(line) for line in piped.splitlines() if line.startswith("|")) > 72 and "(part " not in piped
    monkeypatch.setenv("COLUMNS", "72")
    assert main(command) == 0
    folded = capsys.readouterr().out
    assert max(len(line) for line in folded.splitlines() if line.startswith("|")) <= 72 and "(part 1 of " in folded
    assert "Verdict: agree" in folded


# --- a tolerance override and its reason ---------------------------------------------

@pytest.mark.parametrize("catalogue_result", ["sigmoid-exponential-adam"], indirect=True, scope="session")
def test_a_tolerance_override_and_its_reason_are_in_the_report(catalogue_result):
    md = scenario_markdown(catalogue_result, diagnose(catalogue_result))
    above = md.split("<details>", 1)[0]
    line = next(x for x in above.splitlines() if x.startswith("- **Tolerance set by this scenario**"))
    assert "float32: rtol 5e-05, atol 1e-07" in line and "instead of the default rtol 1e-05, atol 1e-07" in line
    assert "float64" not in line.split("Why")[0]  # float64 keeps the default
    assert "Why, in its file's words: float32: Adam divides each update by sqrt(v)" in line
    assert "Measured over 5000 steps" in line and line.endswith("(measured 1.0e-12 relative at worst).")
    assert "(float32: set by the scenario, its reason above)" in md.split("## Set-up")[1]


def test_the_reason_is_the_comment_just_above_the_table_and_stays_text(tmp_path):
    text = TINY + ("\n# unrelated\n\n# <script>alert(1)</script> [x](javascript:alert(2)), measured 3e-9.\n"
                   "# | a second line\n[tolerance]\nfloat64 = { rtol = 1e-9 }\n")
    assert tolerance_reasons(text) == ["<script>alert(1)</script> [x](javascript:alert(2)), measured 3e-9. "
                                       "| a second line"]
    path = tmp_path / "tiny-mlp.toml"
    path.write_text(text)
    assert tolerance_reason(path).startswith("<script>")
    [scenario] = load_scenarios(path)
    result = run_scenario(scenario, frameworks=("numpy",), dtypes=("float64",))
    md = scenario_markdown(result)
    [line] = [x for x in md.splitlines() if x.startswith("- **Tolerance set by this scenario**")]
    assert "float64: rtol 1e-09, atol 1e-14" in line and "&lt;script&gt;alert(1)&lt;/script&gt;" in line
    assert "\\[x](javascript:alert(2))" in line and "\\| a second line" in line and "<script>" not in line
    path.write_text(TINY + "\n[tolerance]\nfloat64 = { rtol = 1e-9 }\n")
    [scenario] = load_scenarios(path)
    md = scenario_markdown(run_scenario(scenario, frameworks=("numpy",), dtypes=("float64",)))
    assert "Its file gives no reason" in md
    path.write_text(TINY)
    [scenario] = load_scenarios(path)
    assert "Tolerance set by this scenario" not in scenario_markdown(
        run_scenario(scenario, frameworks=("numpy",), dtypes=("float64",)))
    assert tolerance_reason(tmp_path / "gone.toml") == ""  # a file that is no longer there: no reason


# --- both diverged ----------------------------------------------------------------------

@pytest.mark.slow
def test_an_explained_pair_whose_runs_both_end_in_nan_says_both_diverged():
    """minibatch-diverging with Keras on JAX: its float64 run differs, explained (Keras' 32-bit rule on
    JAX), and both runs end in nan. Its gap is inf (one overflows first) and its final weights are
    nan == nan: the index, the pairs table and the summary say "both diverged (nan)", never
    "explained gap up to inf, final weights within 0" or "identical final parameters"."""
    result = run_scenario(resolve("minibatch-diverging"), frameworks=("numpy", "keras@jax"), dtypes=("float64",))
    diagnoses = diagnose(result)
    [c] = [c for c in result.comparisons if c.state == EXPLAINED]
    gap = final_gap(result, c)
    assert gap is not None and gap.diverged and gap.max_abs == 0 and gap.digits() == DIVERGED
    assert explained_gap(result, c)[0] == DIVERGED == "both diverged (nan)"
    line = index_line(result, diagnoses)
    assert "explained pairs both diverged (nan)" in line and "up to inf" not in line and "within 0" not in line
    paragraph = summary_paragraph(result, diagnoses)
    assert "both diverged (nan)" in paragraph and "bit for bit" not in paragraph
