"""Temporary stand-in for the optimisers branch (same interface)."""
from __future__ import annotations

CONVENTIONS = ("keras", "torch")


def difference(spec) -> str | None:
    if spec.name == "sgd" and not spec.options.get("momentum"):
        return None
    return f"{spec.name} convention"


def native_convention(framework: str, spec) -> str:
    return "common" if difference(spec) is None else framework


def pinned(spec) -> str | None:
    return spec.options.get("convention")
