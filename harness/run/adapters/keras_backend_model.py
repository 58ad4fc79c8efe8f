"""What Keras on JAX and on torch share: importing Keras on the backend, and the model's settings.

Keras reads ``KERAS_BACKEND`` once, at import: one backend per process. ``keras@jax`` and
``keras@torch`` therefore run only in a worker process of their own (``harness.run.workers``), which
sets the backend before anything imports Keras; in any other process ``import_keras_on`` refuses to run.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from harness.run.adapters import keras_tf
from harness.run.adapters.keras_model import KerasModel
from harness.run.adapters.keras_narrowing import keep_64_bit
from harness.run.threads import framework_threads


def import_keras_on(backend: str) -> Any:
    """Keras on ``backend``: sets ``KERAS_BACKEND`` (and, for JAX, 64-bit floats) before the import;
    RuntimeError when this process already imported Keras on another backend."""
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_platforms", "cpu")
    with keras_tf._quiet_stderr():
        import keras
    if keras.backend.backend() != backend:
        raise RuntimeError(f"this process imported Keras on {keras.backend.backend()!r}; keras@{backend} runs "
                           "in a worker process of its own")
    if backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(framework_threads())
    return keras


class BackendModel(KerasModel):
    """A ``KerasModel`` on JAX or torch: Keras' narrowing rule off while a control run computes, and
    the "keras-unrounded" convention (``keras_backends.KerasOnBackend``)."""

    def import_keras(self) -> Any:
        return import_keras_on(self.backend)

    def convention_adapter(self) -> Any:
        from harness.run.adapters.keras_backends import ADAPTERS

        return ADAPTERS[f"keras@{self.backend}"]

    @contextlib.contextmanager
    def settings(self) -> Iterator[None]:
        """Keras' float type for the run's dtype, and its narrowing rule off for a control run: in force
        whenever the model computes or is traced."""
        with super().settings(), keep_64_bit() if self.scenario.keep_64_bit else contextlib.nullcontext():
            yield
