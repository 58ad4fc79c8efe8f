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
    known: list[str] = []
    unread: list[str] = []  # a broken file elsewhere in the catalogue does not hide a valid name
    for path in catalogue():
        try:
            scenarios = load_scenarios(path)
        except BadInput as exc:
            unread.append(exc.one_line())
            continue
        for scenario in scenarios:
            if scenario.name == name_or_path:
                return [scenario]
            known.append(scenario.name)
    not_read = f" (catalogue files not read: {'; '.join(unread)})" if unread else ""
    raise BadInput(name_or_path, "", f"a scenario file or one of the catalogue names {known}{not_read}",
                   name_or_path)


def resolve(name_or_path: str) -> Scenario:
    """One scenario: a catalogue name, or a file holding a single scenario."""
    scenarios = resolve_all(name_or_path)
    if len(scenarios) != 1:
        raise BadInput(name_or_path, "variants", "a single scenario here; name one of the variants",
                       [s.name for s in scenarios])
    return scenarios[0]
