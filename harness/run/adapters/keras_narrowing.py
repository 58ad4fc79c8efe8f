"""Where Keras on JAX and torch computes a float64 run's operations in 32 bits, and the control
setting that turns that rule off.

On these backends Keras' type promotion (``keras.backend.result_type``) maps every 64-bit result
type to 32 bits, so some operations of a float64 run (``keras.ops.mean`` in a loss on JAX,
``keras.ops.matmul`` on torch...) compute in float32. Each float64 run records where
(``Trajectory.narrowed_ops``, from every operation of its first step: the jaxpr on JAX,
``watch_torch``'s ``TorchFunctionMode`` on torch). A scenario with ``keep_64_bit`` (a control run the
runner makes, ``harness.run.runner``) runs with that one rule turned off (``keep_64_bit()``).
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Iterator

NARROWING_RULE = "Keras' rule that returns 32-bit results from 64-bit inputs"


@contextlib.contextmanager
def keep_64_bit() -> Iterator[None]:
    """Turn off ``NARROWING_RULE`` while the block runs: Keras' promotion table
    ``BIT64_TO_BIT32_DTYPE`` (``keras.src.backend.common.dtypes``, read at each call) emptied, then
    restored. A control setting: the run computes every operation in 64 bits, which shows whether that
    rule is the whole of a float64 run's difference."""
    from keras.src.backend.common import dtypes

    saved = dict(dtypes.BIT64_TO_BIT32_DTYPE)
    dtypes.BIT64_TO_BIT32_DTYPE.clear()
    try:
        yield
    finally:
        dtypes.BIT64_TO_BIT32_DTYPE.update(saved)


def _keras_function(frames: list[tuple[str, str]]) -> str:
    """The innermost Keras function among ``(file, function)`` frames (innermost first) outside the
    backend's ``core`` module (``cast``, ``convert_to_tensor``: called by the operation), as a dotted
    name (``keras.src.backend.jax.numpy.mean``); "" when no frame is Keras'."""
    names = []
    for file, function in frames:
        parts = Path(file).with_suffix("").parts
        if "keras" in parts and "src" in parts:
            start = len(parts) - 1 - parts[::-1].index("keras")
            names.append(".".join((*parts[start:], function.split(".")[-1])))
    # the operation that asked for the narrowing, not the backend's conversion helpers it called
    return next((n for n in names if ".core." not in n), names[0] if names else "")


def narrowed_in_jaxpr(jaxpr: Any, out: dict[str, str]) -> None:
    """Every equation (sub-jaxprs included) with a float64 input and a narrower float result."""
    for eqn in jaxpr.eqns:
        for value in eqn.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    narrowed_in_jaxpr(inner, out)
        ins = {str(getattr(v.aval, "dtype", "")) for v in eqn.invars if hasattr(v, "aval")}
        narrow = [str(v.aval.dtype) for v in eqn.outvars if str(getattr(v.aval, "dtype", "")) in ("float32", "float16",
                                                                                              "bfloat16")]
        if "float64" in ins and narrow:
            frames = [(f.file_name, f.function_name) for f in eqn.source_info.traceback.frames]
            out.setdefault(_keras_function(frames) or eqn.primitive.name, narrow[0])


@contextlib.contextmanager
def watch_torch() -> Iterator["_NarrowedOps"]:
    """A ``TorchFunctionMode`` that records what ``_NarrowedOps`` finds while the block runs."""
    from torch.overrides import TorchFunctionMode

    watch = _NarrowedOps()

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                               kwargs: dict[str, Any] | None = None) -> Any:
            return watch(func, args, kwargs or {})

    with Mode():
        yield watch


class _NarrowedOps:
    """A ``torch.overrides.TorchFunctionMode`` body: each torch function called with a float64 tensor
    that returns a narrower float tensor, named by the innermost Keras function calling it."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}

    def __call__(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import torch

        result = func(*args, **kwargs)
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        results = result if isinstance(result, (tuple, list)) else (result,)
        narrow = [str(r.dtype).removeprefix("torch.") for r in results
                  if isinstance(r, torch.Tensor) and r.dtype in (torch.float32, torch.float16, torch.bfloat16)]
        if narrow and any(t.dtype == torch.float64 for t in tensors):
            frame: FrameType | None = sys._getframe(1)
            frames = []
            while frame is not None:
                frames.append((frame.f_code.co_filename, frame.f_code.co_name))
                frame = frame.f_back
            self.found.setdefault(_keras_function(frames) or str(getattr(func, "__name__", func)), narrow[0])
        return result
