"""The scenario catalogue (``scenarios/*.toml``) and name-or-file resolution."""
from __future__ import annotations

import os
from pathlib import Path

from harness.errors import BadInput
from harness.spec.scenario import Scenario, load_scenarios


def catalogue_dir() -> Path:
    """The scenario catalogue: ``$NN_PARITY_SCENARIOS`` or ``scenarios/`` beside the packages."""
    override = os.environ.get("NN_PARITY_SCENARIOS")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "scenarios"


def catalogue() -> list[Path]:
    return sorted(catalogue_dir().glob("*.toml"))


def catalogue_scenarios() -> list[Scenario]:
    """Every scenario of the catalogue, a file's variants in file order."""
    return [s for path in catalogue() for s in load_scenarios(path)]


def resolve_all(name_or_path: str) -> list[Scenario]:
    """A scenario file's scenarios (several if it has variants), or the catalogue scenario so named."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_scenarios(candidate)
    for path in catalogue():
        for scenario in load_scenarios(path):
            if scenario.name == name_or_path:
                return [scenario]
    known = [s.name for s in catalogue_scenarios()]
    raise BadInput(name_or_path, "", f"a scenario file or one of the catalogue names {known}", name_or_path)


def resolve(name_or_path: str) -> Scenario:
    """One scenario: a catalogue name, or a file holding a single scenario."""
    scenarios = resolve_all(name_or_path)
    if len(scenarios) != 1:
        raise BadInput(name_or_path, "variants", "a single scenario here; name one of the variants",
                       [s.name for s in scenarios])
    return scenarios[0]
