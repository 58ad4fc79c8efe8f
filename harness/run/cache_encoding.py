"""A cache entry's value as data: a JSON tree whose arrays are ``.npy`` members, never a pickle.

``encode_value`` turns a value (numbers, strings, arrays, lists, tuples, dicts with string keys,
and the dataclasses of ``_TYPES``: a ``Trajectory``) into a JSON tree, each array a reference to
a member of the entry's archive (``Members``: an array met twice is kept once; a list of plain
arrays of one dtype is packed into one member); ``decode_value`` rebuilds it from the tree and
the members, and raises ``ValueError`` for anything ``encode_value`` never writes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from harness.run.trajectory import Trajectory

_TYPES: dict[str, type] = {"Trajectory": Trajectory}  # the dataclasses an entry may hold


class Members:
    """The arrays of an entry being written, one ``.npy`` member each; an array met twice (the
    same object: a run's ``batch_rows`` repeats one array per step) is kept once."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._names: dict[int, str] = {}
        self._keep: list[np.ndarray] = []  # the ids stay valid while the entry is written

    def add(self, array: np.ndarray) -> str:
        name = self._names.get(id(array))
        if name is None:
            name = self._names[id(array)] = f"a{len(self.arrays)}"
            self.arrays[name] = array
            self._keep.append(array)
        return name


def _packable(values: list[Any]) -> bool:
    """A list of plain C-ordered arrays of one dtype (a run's ``batch_rows``, its layer outputs):
    kept as one member, not one per array."""
    return len(values) > 1 and all(isinstance(v, np.ndarray) for v in values) and all(
        v.dtype == values[0].dtype and v.dtype.isnative and v.dtype.kind in "biufc" and v.flags.c_contiguous
        for v in values)


def encode_value(value: Any, members: Members) -> Any:
    """``value`` as a JSON tree; each array becomes ``{"array": name}`` with the array in ``members``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufcSUVMm":
        return {"array": members.add(value)}
    if isinstance(value, np.generic):
        return {"scalar": encode_value(np.asarray(value), members)}
    if isinstance(value, bytes):
        return {"bytes": encode_value(np.frombuffer(value, dtype=np.uint8), members)}
    if isinstance(value, list) and _packable(value):
        unique = {id(v): v for v in value}
        index = {i: n for n, i in enumerate(unique)}
        data = np.concatenate([v.ravel() for v in unique.values()])
        return {"arrays": [members.add(data), [list(v.shape) for v in unique.values()], [index[id(v)] for v in value]]}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [encode_value(v, members) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": [[k, encode_value(v, members)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and _TYPES.get(type(value).__name__) is type(value):
        return {"object": type(value).__name__,
                "fields": {f.name: encode_value(getattr(value, f.name), members) for f in dataclasses.fields(value)}}
    raise TypeError(f"the run cache keeps data only, not {type(value).__name__}")


def decode_value(node: Any, arrays: Callable[[str], np.ndarray]) -> Any:
    """The value ``encode_value`` described; ValueError for anything it never writes."""
    if node is None or isinstance(node, (bool, str)):
        return node
    if not isinstance(node, dict) or len(node) != (2 if "object" in node else 1):
        raise ValueError("not an encoded value")
    tag, inner = next(iter(node.items()))
    if tag == "int":
        return int(inner)
    if tag == "float":
        return float.fromhex(inner)
    if tag == "array":
        return arrays(inner)
    if tag == "scalar":
        return decode_value(inner, arrays)[()]
    if tag == "bytes":
        return decode_value(inner, arrays).tobytes()
    if tag == "arrays" and isinstance(inner, list) and len(inner) == 3:
        name, shapes, order = inner
        data, parts, start = arrays(name), [], 0
        for shape in shapes:
            size = int(np.prod(shape, dtype=np.int64))
            parts.append(data[start:start + size].reshape(shape))
            start += size
        if start != data.size:
            raise ValueError("packed arrays of another size")
        return [parts[i] for i in order]
    if tag in ("list", "tuple") and isinstance(inner, list):
        items = [decode_value(v, arrays) for v in inner]
        return items if tag == "list" else tuple(items)
    if tag == "dict" and isinstance(inner, list):
        return {str(k): decode_value(v, arrays) for k, v in inner}
    if tag == "object" and inner in _TYPES:
        cls = _TYPES[inner]
        names = {f.name for f in dataclasses.fields(cls)}
        fields = node["fields"]
        if not isinstance(fields, dict) or set(fields) != names:
            raise ValueError(f"not the fields of {inner}")
        return cls(**{k: decode_value(v, arrays) for k, v in fields.items()})
    raise ValueError(f"not an encoded value: {tag}")
