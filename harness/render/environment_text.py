"""The machine a report was made on, in the report's words: the label of the line under every title
(``Environment: <harness.run.environment.environment_line()>``) and the items of the report's Environment
section (each part of the machine's description, then how the frameworks were set up)."""
from __future__ import annotations

from harness.judge.result import ScenarioResult
from harness.run import environment

ENVIRONMENT = "Environment"  # the header line's label: ``Environment: <environment.environment_line()>``


def environment_lines(result: ScenarioResult) -> list[str]:
    """The report's Environment section: each part of the machine's description, then how the
    frameworks were set up."""
    onednn = "off" if environment.numeric_variables().get("TF_ENABLE_ONEDNN_OPTS") == "0" else "on"
    return [
        *(f"- {what[0].upper() + what[1:]}: {text}" for what, text in environment.parts().items()),
        f"- Device: CPU; {devices(result)}; Keras on the TensorFlow backend with op determinism on, oneDNN "
        f"{onednn}; torch with deterministic algorithms",
        "- dtype policy: each run is entirely in its dtype (data, initial weights, layers, optimizer state)",
    ]


def devices(result: ScenarioResult) -> str:
    """What the runs saw of the machine's accelerators (recorded by each run, so a cached run says
    the same); "not checked" when no run records it."""
    seen = sorted({run.device for run in result.runs.values() if run.device})
    return "; ".join(seen) if seen else "GPU: not checked (torch did not run)"

