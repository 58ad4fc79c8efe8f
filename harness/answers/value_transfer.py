"""What the submission's process gives back crosses into the audit as data, never as objects.

A returned value (``flatten``, in the child) becomes its structure as JSON (dicts, lists, tuples,
numbers, ``None``) and its numeric leaves as float64 arrays, saved to an ``.npz`` read with
``allow_pickle=False``; a list of two or more items of one structure (a training history) is one
stacked array per leaf. A leaf that is not numeric comes back as ``Opaque`` (its type and why). No
object the submission made is unpickled in the harness: ``unflatten`` rebuilds the value from the
structure and the arrays. Text from the process (a crash reason, a note, its stderr) is kept as its
last non-blank line, shortened (``last_line``).

Imported by the child (``harness.answers.sandbox_child``): the standard library and NumPy only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LINE = 300  # characters of a line of text kept from the submission's process


@dataclass(frozen=True)
class Opaque:
    """A returned value that is not numeric data (an object of the submission's own): its type and why."""
    type_name: str
    reason: str


def type_name(value: object) -> str:
    """The type of a returned value as the submission made it (an ``Opaque``'s own type)."""
    return value.type_name if isinstance(value, Opaque) else type(value).__name__


def last_line(text: str) -> str:
    """The last non-blank line of ``text``, stripped and shortened."""
    line = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
    return line if len(line) <= LINE else line[: LINE - 3] + "..."


_NUMBERS = {bool: "bool", int: "int", float: "float"}


def flatten(value: object, arrays: dict[str, Any]) -> dict[str, Any]:
    """``value`` as data: a JSON structure whose numeric leaves are float64 arrays put in ``arrays``
    (see the module); a list of two or more items of one structure is one stacked array per leaf."""
    if value is None:
        return {"kind": "none"}
    if isinstance(value, dict):
        return {"kind": "dict", "items": [[str(k), flatten(v, arrays)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        container = "tuple" if isinstance(value, tuple) else "list"
        parts = [flatten(v, {}) for v in value]
        if len(value) > 1 and all(p == parts[0] for p in parts) and _stackable(parts[0]):
            leaves: list[dict[str, Any]] = []
            item = _leaves(parts[0], leaves)
            per_item = [_leaf_values(v, parts[0]) for v in value]
            for j, leaf in enumerate(leaves):
                key = f"{len(arrays)}"
                arrays[key] = np.stack([values[j] for values in per_item])
                leaf["key"] = key
            return {"kind": "stack", "container": container, "length": len(value), "item": item}
        return {"kind": container, "items": [flatten(v, arrays) for v in value]}
    number = _NUMBERS.get(type(value))
    try:
        array = np.asarray(value, dtype=np.float64)
    except Exception as exc:  # not numeric data: its type and why, never the object itself
        return {"kind": "opaque", "type": type(value).__name__, "reason": last_line(str(exc)) or "not numeric"}
    key = f"{len(arrays)}"
    arrays[key] = array
    return {"kind": "leaf", "key": key, "shape": list(array.shape), **({"number": number} if number else {})}


def _stackable(structure: dict[str, Any]) -> bool:
    """A structure made only of numeric leaves, dicts, lists and tuples (``None`` and opaque leaves are not)."""
    kind = structure["kind"]
    if kind == "leaf":
        return True
    if kind == "dict":
        return all(_stackable(v) for _, v in structure["items"])
    if kind == "stack":
        return _stackable(structure["item"])
    return kind in ("list", "tuple") and all(_stackable(v) for v in structure["items"])


def _leaves(structure: dict[str, Any], found: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``structure`` whose leaves are listed in ``found`` (in order), to be given stacked keys."""
    kind = structure["kind"]
    if kind == "leaf":
        leaf = dict(structure)
        found.append(leaf)
        return leaf
    if kind == "dict":
        return {**structure, "items": [[k, _leaves(v, found)] for k, v in structure["items"]]}
    if kind == "stack":
        return {**structure, "item": _leaves(structure["item"], found)}
    return {**structure, "items": [_leaves(v, found) for v in structure["items"]]}


def _leaf_values(value: Any, structure: dict[str, Any]) -> list[np.ndarray]:
    """``value``'s numeric leaves, in the order of ``_leaves``, as float64 arrays."""
    kind = structure["kind"]
    if kind == "leaf":
        return [np.asarray(value, dtype=np.float64)]
    if kind == "dict":
        return [a for (_, v), (_, s) in zip(value.items(), structure["items"]) for a in _leaf_values(v, s)]
    if kind == "stack":
        return [np.stack(column) for column in zip(*(_leaf_values(v, structure["item"]) for v in value))] \
            if len(value) else []
    return [a for v, s in zip(value, structure["items"]) for a in _leaf_values(v, s)]


def unflatten(structure: Any, arrays: dict[str, np.ndarray], index: tuple[int, ...] = ()) -> object:
    """The value ``flatten`` described (``index``: the item of a stacked list being rebuilt)."""
    kind = structure["kind"]
    if kind == "none":
        return None
    if kind == "opaque":
        return Opaque(str(structure["type"]), last_line(str(structure["reason"])))
    if kind == "leaf":
        value = arrays[structure["key"]][index] if index else arrays[structure["key"]]
        number = structure.get("number")  # a Python number: given back as one
        return {"bool": bool, "int": int, "float": float}[number](value) if number else np.array(value)
    if kind == "dict":
        return {str(k): unflatten(v, arrays, index) for k, v in structure["items"]}
    if kind == "stack":
        items = [unflatten(structure["item"], arrays, (*index, i)) for i in range(int(structure["length"]))]
        return tuple(items) if structure["container"] == "tuple" else items
    items = [unflatten(v, arrays, index) for v in structure["items"]]
    return tuple(items) if kind == "tuple" else items
