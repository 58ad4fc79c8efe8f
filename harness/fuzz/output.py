"""What a campaign writes under ``--out``: ``findings/<fingerprint-slug>.toml``, each a scenario
file ``nn-parity run`` loads (its description says the fingerprint, the count, the families and the
command that replays it), and the ``--json`` summary. Atomic writes (``harness.render.files``);
no absolute path in any file."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.fuzz.toml_text import to_toml
from harness.render.files import write_files_atomic, write_json
from harness.run.environment import versions
from harness.spec.names import NAME_MAX

if TYPE_CHECKING:
    from harness.fuzz.campaign import Campaign, Record

FINDINGS = "findings"
# the packages each implementation computes with (python and numpy: every campaign's reference and harness);
# Keras on JAX imports scipy.linalg and loads SciPy's OpenBLAS into its worker
PACKAGES_OF = {"numpy": ("numpy",), "keras": ("keras", "tensorflow-cpu", "tensorflow"),
               "keras@jax": ("keras", "jax", "jaxlib", "scipy"), "keras@torch": ("keras", "torch"),
               "torch": ("torch",)}
TITLE = "fuzz finding: "  # a finding file's title: this, then its fingerprint's text


def file_name(record: Record) -> str:
    return f"{record.fingerprint.slug()}.toml"


def replay_command(record: Record, campaign: Campaign) -> str:
    fp = record.fingerprint
    dtype = fp.dtype if fp.dtype in campaign.dtypes else "both" if len(campaign.dtypes) == 2 else campaign.dtypes[0]
    return (f"nn-parity run {FINDINGS}/{file_name(record)} --frameworks {','.join(campaign.frameworks)} "
            f"--dtype {dtype}")


def finding_versions(frameworks: tuple[str, ...]) -> dict[str, str]:
    """The installed versions of the packages the campaign's implementations computed with: what
    produced its findings (a finding replayed after an upgrade is rewritten with the new ones)."""
    wanted = {"python", "numpy"} | {p for f in frameworks for p in PACKAGES_OF.get(f, ())}
    return {name: v for name, v in versions().items() if name in wanted}


def versions_text(found: dict[str, str]) -> str:
    return ", ".join(f"{name} {v}" for name, v in found.items())


def origin(record: Record) -> str:
    """``seeded example 12`` or ``guided example 3`` (``harness.fuzz.campaign``)."""
    return f"{record.origin[0]} example {record.origin[1]}"


def finding_text(record: Record, campaign: Campaign) -> str:
    """The minimal example of ``record`` as a scenario file."""
    fp = record.fingerprint
    families = ", ".join(f"{name} ({n})" for name, n in sorted(record.families.items()))
    raw: dict[str, Any] = {
        "name": f"fuzz-{fp.slug()}"[:NAME_MAX].rstrip("-"),
        "title": f"{TITLE}{fp.text()}",
        "source": f"nn-parity fuzz --seed {campaign.seed} {campaign.budget()}",
        "description": (f"fingerprint (suspect / stage / quantity / dtype / cause): {fp.text()}\n"
                        f"examples with it: {record.count}; their edge-value families: {families}\n"
                        f"this example's families: {', '.join(record.minimal.families) or 'plain'}; "
                        f"{'shrunk' if record.shrunk else 'not shrunk (the first example)'}; first drawn as "
                        f"{origin(record)}\n"
                        f"found with: {versions_text(finding_versions(campaign.frameworks))}\n"
                        f"replay: {replay_command(record, campaign)}\n"),
        **{k: v for k, v in record.minimal.raw.items() if k != "name"},
    }
    return to_toml(raw)


def write_findings(campaign: Campaign) -> None:
    files = {file_name(r): finding_text(r, campaign).encode() for r in campaign.records.values()}
    if files or (campaign.out / FINDINGS).is_dir():  # an earlier finding not found again is removed
        write_files_atomic(campaign.out / FINDINGS, files, belongs=lambda name: name.endswith(".toml"))


def summary(campaign: Campaign) -> dict[str, Any]:
    found_with = finding_versions(campaign.frameworks)
    return {
        "frameworks": list(campaign.frameworks), "dtypes": list(campaign.dtypes), "seed": campaign.seed,
        "examples": campaign.examples, "phases": dict(sorted(campaign.phases.items())),
        "seconds": round(campaign.seconds, 3), "examples_per_hour": round(campaign.examples_per_hour, 1),
        "outcomes": dict(sorted(campaign.kinds.items())), "reasons": dict(sorted(campaign.reasons.items())),
        "findings": [{"fingerprint": r.fingerprint.text(), "suspect": r.fingerprint.suspect,
                      "stage": r.fingerprint.stage, "quantity": r.fingerprint.quantity,
                      "dtype": r.fingerprint.dtype, "cause": r.fingerprint.cause, "count": r.count,
                      "families": dict(sorted(r.families.items())), "shrunk": r.shrunk is not None, "origin": origin(r),
                      "shrink_seconds": round(r.shrink_seconds, 1), "versions": found_with,
                      "file": f"{FINDINGS}/{file_name(r)}", "replay": replay_command(r, campaign)}
                     for r in sorted(campaign.records.values(), key=lambda r: r.fingerprint)],
    }


def write_summary(campaign: Campaign, path: str | Path) -> None:
    write_json(path, summary(campaign))
