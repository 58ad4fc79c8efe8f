"""The answer-key file (TOML; a public contract, see docs/answer-keys.md) and its loader.

::

    title = "Lab: maths of deep learning"
    [defaults]                  # optional, for every answer
    printed_precision = 8       # numpy's print precision: trimmed elements count at 8 decimals
    [[answer]]
    id = "1.1"
    compute = "dense"           # see harness.answers.questions
    X = [[1, 2], [2, 1]]
    w = [[1], [1]]
    expected = [[3], [3]]       # or numpy's printed text, pasted as a string, or a notebook's saved
                                # output: { notebook = "lab.ipynb", cell = 12 } (or id = "...", tag = "...")

A file that cannot be read (not a regular UTF-8 text file, not TOML, nested too deep:
``harness.spec.fields.read_toml``, the scenario files' reader too) is one error (exit 2).
Inside a file that parses, each answer is read on its own: a bad answer becomes a
``Malformed`` entry naming its id and field, and the others are still checked. Inputs are
finite numbers; only ``expected`` may print nan or inf (judged by the one comparison rule:
nan matches only nan, inf only the same inf).

A notebook's saved output is read by ``harness.answers.notebook`` (the notebook path is relative
to the key's folder and stays inside it; each notebook is read once per key) and then by the same
strict printed-array reader as a pasted string. A cell without output, a missing cell or a
notebook that cannot be read makes the answer ``Malformed``, naming the key, the field and the
notebook.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from harness.answers.notebook import cell_output, read_notebook, run_all_problems
from harness.answers.question_fields import COMPUTE_KINDS, parse_question
from harness.answers.questions import (
    HISTORY_KEYS,
    Question,
    ScenarioQuestion,
    history_epochs,
    input_names,
    part_shape,
    parts,
)
from harness.errors import MISSING, BadInput, escape_controls
from harness.spec.fields import Table, read_toml
from harness.spec.printed import Printed, PrintedError, parse_history, parse_printed

TOP_KEYS = {"title", "source", "defaults", "answer"}
SETTINGS = {"rtol", "atol", "printed_precision", "inputs_rounded_to"}
ANSWER_KEYS = {"id", "compute", "expected", "reproducible", "note", "source", *SETTINGS}
ID_MAX = 120
NOTEBOOK_KEYS = {"notebook", "cell", "id", "tag"}
_SELECTORS = ("cell", "id", "tag")  # a cell by execution count (In [n]), cell id or tag
Notebooks = dict[Path, "nbformat.NotebookNode | BadInput"]  # each notebook read once per key


@dataclass(frozen=True)
class Settings:
    """How an answer's tolerance is decided (answer fields override ``[defaults]``)."""

    rtol: float | None = None
    atol: float | None = None
    printed_precision: int | None = None
    inputs_rounded_to: int | dict[str, int] | None = None


@dataclass(frozen=True)
class Answer:
    id: str
    kind: str
    question: Question
    expected: dict[str, Printed] | None  # part -> printed value; None: unanswered
    settings: Settings
    reproducible: bool = True
    note: str = ""
    source: str = ""
    expected_from: dict[str, str] = field(default_factory=dict)  # part -> "lab.ipynb, In [12]"
    warnings: tuple[str, ...] = ()  # about where the expected value came from (a notebook that will not Run All)


@dataclass(frozen=True)
class Malformed:
    id: str
    error: BadInput


@dataclass(frozen=True)
class AnswerKey:
    path: Path
    title: str
    source: str
    entries: tuple[Answer | Malformed, ...]


def load_key(path: str | Path) -> AnswerKey:
    path = Path(path)
    raw = read_toml(path, what="answer-key file")
    top = Table(raw, file=path)
    top.check_keys(TOP_KEYS)
    top.sub("defaults", required=False).check_keys(SETTINGS)
    defaults = _settings(top.sub("defaults", required=False), Settings())
    raw_answers = raw.get("answer", [])
    if not isinstance(raw_answers, list) or not all(isinstance(a, dict) for a in raw_answers):
        raise top.error("answer", "an array of tables ([[answer]])", raw_answers)
    if not raw_answers:
        raise top.error("answer", "at least one [[answer]] table", "none")
    entries: list[Answer | Malformed] = []
    seen: set[str] = set()
    notebooks: Notebooks = {}
    for index, data in enumerate(raw_answers):
        raw_id = data.get("id")
        answer_id = str(raw_id) if isinstance(raw_id, (str, int, float)) and not isinstance(raw_id, bool) \
            else f"#{index + 1}"
        printable = escape_controls(answer_id) == answer_id and "|" not in answer_id and 0 < len(answer_id) <= ID_MAX
        if not printable:
            answer_id = f"#{index + 1}"
        t = Table(data, file=path, where=f"answer[{answer_id}]")
        try:
            if not printable:
                raise t.error("id", f"one line of at most {ID_MAX} characters, without '|' (ids are table cells)",
                              raw_id)
            if answer_id.startswith("#"):
                raise t.error("id", "a string or number naming the answer", raw_id or "nothing (missing)")
            if answer_id in seen:
                raise t.error("id", "a unique id", answer_id)
            seen.add(answer_id)
            entries.append(_answer(t, answer_id, defaults, key_dir=path.parent, notebooks=notebooks))
        except BadInput as exc:
            entries.append(Malformed(id=answer_id, error=exc))
    return AnswerKey(path=path, title=top.string("title", path.stem), source=top.string("source", ""),
                     entries=tuple(entries))


def _settings(t: Table, base: Settings) -> Settings:
    rounded = base.inputs_rounded_to
    if t.has("inputs_rounded_to"):
        value = t.data["inputs_rounded_to"]
        if isinstance(value, dict):
            sub = t.sub("inputs_rounded_to")
            rounded = {k: sub.integer(k, minimum=0) for k in value}
        else:
            rounded = t.integer("inputs_rounded_to", minimum=0)
    return Settings(
        rtol=t.number("rtol", base.rtol, minimum=0.0),
        atol=t.number("atol", base.atol, minimum=0.0),
        printed_precision=t.integer("printed_precision", base.printed_precision, minimum=0),
        inputs_rounded_to=rounded,
    )


def _answer(t: Table, answer_id: str, defaults: Settings, *, key_dir: Path, notebooks: Notebooks) -> Answer:
    kind = t.string("compute", choices=tuple(COMPUTE_KINDS))
    _, fields = COMPUTE_KINDS[kind]
    t.check_keys(ANSWER_KEYS | fields)
    question = parse_question(kind, t, key_dir=key_dir)
    settings = _settings(t, defaults)
    if isinstance(question, ScenarioQuestion) and settings.inputs_rounded_to is not None and t.has(
            "inputs_rounded_to"):
        raise t.error("inputs_rounded_to", "no rounding declaration for a scenario answer (its inputs are the "
                      "scenario's own)", t.data["inputs_rounded_to"])
    if isinstance(settings.inputs_rounded_to, dict):
        known = input_names(question)
        for name in settings.inputs_rounded_to:
            if name not in known:
                raise t.error(f"inputs_rounded_to.{name}", f"one of the answer's inputs {known}", name)
    sources: dict[str, str] = {}
    read: dict[str, str] = {}  # notebook -> why it will not Run All ('' when it will)
    if isinstance(question, ScenarioQuestion) and question.quantity == "history":
        expected = _history(t, question, settings, key_dir=key_dir, notebooks=notebooks, sources=sources, read=read)
        if expected is not None:  # the entries the key printed are the ones computed
            question = replace(question, entries=len(expected["loss"].values))
    else:
        expected = _expected(t, question, settings, key_dir=key_dir, notebooks=notebooks, sources=sources,
                             read=read)
    warnings = tuple(f"{name} will not Run All from a fresh kernel, so its saved outputs may not be what it "
                     f"computes: {why}" for name, why in read.items() if why)
    return Answer(id=answer_id, kind=kind, question=question, expected=expected,
                  settings=settings, reproducible=t.boolean("reproducible", True), note=t.string("note", ""),
                  source=t.string("source", ""), expected_from=sources, warnings=warnings)


def _expected(t: Table, question: Question, settings: Settings, *, key_dir: Path, notebooks: Notebooks,
              sources: dict[str, str], read: dict[str, str]) -> dict[str, Printed] | None:
    """part -> the printed value (pasted, or a notebook cell's saved output, whose cell ``sources`` records)."""
    if not t.has("expected"):
        return None
    names = parts(question)
    raw = t.data["expected"]

    def printed(field: str, value: object, part: str) -> Printed:
        where = ""
        if isinstance(value, dict):  # { notebook = "lab.ipynb", cell = 12 }
            value, where = _notebook_output(Table(value, file=t.file, where=t.field(field)), key_dir=key_dir,
                                            notebooks=notebooks, read=read)
            sources[part] = where
        return _printed(t, field, value, question, part, settings, where=where)

    if names == ("value",):
        return {"value": printed("expected", raw, "value")}
    if not isinstance(raw, dict):
        raise t.error("expected", f"a table of parameters {{ {', '.join(f'{n} = ...' for n in names)} }}", raw)
    if "notebook" in raw:
        raise t.error("expected.notebook", f"one printed value per parameter: {{ {names[0]} = {{ notebook = ..., "
                      "cell = ... }, ... }, each cell printing one array", raw["notebook"])
    for name in raw:
        if name not in names:
            raise t.error(f"expected.{name}", f"one of the parameters {list(names)}", name)
    return {name: printed(f"expected.{name}", raw[name], name) for name in names if name in raw}


def _history(t: Table, question: ScenarioQuestion, settings: Settings, *, key_dir: Path, notebooks: Notebooks,
             sources: dict[str, str], read: dict[str, str]) -> dict[str, Printed] | None:
    """A printed training log: ``print(hist.history)`` pasted (or a notebook cell's output), a loss curve
    (one printed list), or ``{ loss = "..." }``; as many entries as the run has at epochs first, first +
    every, ... (``questions.history_epochs``)."""
    if not t.has("expected"):
        return None
    raw, where = t.data["expected"], ""
    if isinstance(raw, dict) and "notebook" in raw:
        raw, where = _notebook_output(Table(raw, file=t.file, where=t.field("expected")), key_dir=key_dir,
                                      notebooks=notebooks, read=read)
    source = f" in {where}" if where else ""
    if isinstance(raw, str) and raw.strip().startswith("{"):
        try:
            printed = parse_history(raw, printed_precision=settings.printed_precision)
        except PrintedError as exc:
            raise t.error("expected", f"print(hist.history) as Keras shows it{source} ({exc})", raw) from None
    elif isinstance(raw, dict):
        printed = {name: _printed(t, f"expected.{name}", value, question, name, settings, size_check=False)
                   for name, value in raw.items() if name in HISTORY_KEYS}
    else:
        printed = {"loss": _printed(t, "expected", raw, question, "loss", settings, where=where, size_check=False)}
    names = raw if isinstance(raw, dict) else printed
    for name in names:
        if name not in HISTORY_KEYS:
            raise t.error(f"expected.{name}", f"the keys the harness computes, {list(HISTORY_KEYS)} (the training "
                          "loss of each epoch): leave the others out of the pasted history", name)
    if "loss" not in printed:
        raise t.error("expected", "the training loss, 'loss'", "no 'loss'")
    entries = printed["loss"].values
    available = len(history_epochs(replace(question, entries=None)))
    if entries.ndim != 1 or entries.size > available:
        raise t.error("expected.loss" if isinstance(raw, dict) else "expected",
                      f"one list of at most {available} numbers (epochs {question.first}, {question.first} + "
                      f"{question.every}, ... of the scenario's {question.scenario.training_spec.epochs})",
                      f"shape {entries.shape}{source}")
    if where:
        sources["loss"] = where
    return printed


def _notebook_output(ref: Table, *, key_dir: Path, notebooks: Notebooks, read: dict[str, str]) -> tuple[str, str]:
    """The saved output text of the cell ``ref`` names, and where it is (``lab.ipynb, In [12]``); ``read``
    records the notebook and why it will not Run All (``notebook.run_all_problems``; '' when it will)."""
    ref.check_keys(NOTEBOOK_KEYS)
    name = ref.string("notebook")
    chosen = [key for key in _SELECTORS if ref.has(key)]
    if len(chosen) != 1:
        raise ref.error("cell", "exactly one of cell = <execution count, In [n]>, id = \"<cell id>\" or "
                                "tag = \"<cell tag>\"", ", ".join(chosen) or MISSING)
    key = chosen[0]
    count = ref.integer("cell", minimum=0) if key == "cell" else None
    cell_id = ref.string("id") if key == "id" else None
    tag = ref.string("tag") if key == "tag" else None
    path = _notebook_path(ref, name, key_dir)
    if path not in notebooks:
        try:
            notebooks[path] = read_notebook(path)
        except BadInput as exc:
            notebooks[path] = exc
    nb = notebooks[path]
    if isinstance(nb, BadInput):
        raise ref.error("notebook", f"a notebook that can be read ({nb.one_line()})", name)
    if name not in read:
        read[name] = "; ".join(run_all_problems(nb))
    where = f"{name}, " + (f"In [{count}]" if key == "cell" else f"cell {key} {cell_id or tag!r}")
    try:
        text = cell_output(nb, file=path, execution_count=count, cell_id=cell_id, tag=tag)
    except BadInput as exc:
        raise ref.error(key, f"{exc.expected}: {where}", exc.received) from None
    if text is None:
        raise ref.error(key, f"a cell with a saved output ({where} has none: run the notebook and save it with "
                             "its outputs)", "a cell without output")
    return text, where


def _notebook_path(ref: Table, name: str, key_dir: Path) -> Path:
    """``name`` relative to the key's folder, refused when absolute or when it leads out of that folder
    (``..``, or a symbolic link pointing elsewhere): a key checks notebooks that travel with it."""
    relative = Path(name)
    if not name or relative.is_absolute() or relative.suffix != ".ipynb":
        raise ref.error("notebook", "a .ipynb path relative to the key's folder", name)
    path = key_dir / relative
    try:
        inside = path.resolve().is_relative_to(key_dir.resolve())
    except (OSError, RuntimeError):  # a symbolic link loop
        inside = False
    if not inside:
        raise ref.error("notebook", "a notebook inside the key's folder (no '..' or link out of it)", name)
    return path


def _printed(t: Table, field: str, raw: object, question: Question, part: str, settings: Settings, *,
             where: str = "", size_check: bool = True) -> Printed:
    try:
        printed = parse_printed(raw, printed_precision=settings.printed_precision)
    except PrintedError as exc:
        if where:
            raise t.error(field, f"numpy's printed output in {where} ({exc})", raw) from None
        raise t.error(field, f"a number, an array, numpy's printed output or {{ notebook = ..., cell = ... }} "
                             f"({exc})", raw) from None
    if not size_check:
        return printed
    shape = part_shape(question, part)
    size = 1
    for n in shape:
        size *= n
    if printed.values.size != size:
        suffix = f" in {where}" if where else ""
        raise t.error(field, f"{size} numbers (the answer has shape {shape})", f"shape {printed.values.shape}{suffix}")
    return printed
