"""Frameworks imported when a test first uses them, not when pytest collects the test's module.

Importing torch costs over a second of CPU, JAX near one; under pytest-xdist every worker collects
every test module, so a module-level ``import torch`` made each worker of ``make test-fast`` pay it
whether or not it ran a test that needs torch::

    from tests.on_first_use import torch

    def test_something():
        torch.zeros(2)  # torch is imported here, once

An attribute is the framework's own object (``torch.nn.Tanh`` is torch's class), so a monkeypatch,
an ``isinstance`` check or a subclass sees the real thing; where a test hands the module itself to
the code under test, it passes ``loaded(torch)``.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class OnFirstUse:
    """A module, imported on its first lookup of a public attribute. A name starting with ``_`` is
    not looked up (AttributeError, nothing imported): pytest asks each global of a test module for
    ``_mock_name``, ``__wrapped__`` and the like while it collects; a test that needs a private name
    of the framework takes it from ``loaded(module)``."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def loaded(module: OnFirstUse) -> ModuleType:
    """The module itself (imported now if it was not)."""
    return importlib.import_module(module._name)


torch: Any = OnFirstUse("torch")
jax: Any = OnFirstUse("jax")
jnp: Any = OnFirstUse("jax.numpy")
