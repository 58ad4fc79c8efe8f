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
    expected = [[3], [3]]       # or numpy's printed text, pasted as a string

A file that cannot be read (not a regular UTF-8 text file, not TOML, nested too deep:
``harness.spec.fields.read_toml``, the scenario files' reader too) is one error (exit 2).
Inside a file that parses, each answer is read on its own: a bad answer becomes a
``Malformed`` entry naming its id and field, and the others are still checked. Inputs are
finite numbers; only ``expected`` may print nan or inf (judged by the one comparison rule:
nan matches only nan, inf only the same inf).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.answers.questions import (
    KINDS,
    Question,
    ScenarioQuestion,
    input_names,
    parse_question,
    part_shape,
    parts,
)
from harness.errors import BadInput, one_line
from harness.judge.printed import Printed, PrintedError, parse_printed
from harness.spec.fields import Table, read_toml

TOP_KEYS = {"title", "source", "defaults", "answer"}
SETTINGS = {"rtol", "atol", "printed_precision", "inputs_rounded_to"}
ANSWER_KEYS = {"id", "compute", "expected", "reproducible", "note", "source", *SETTINGS}
ID_MAX = 120


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

    @property
    def malformed(self) -> list[Malformed]:
        return [e for e in self.entries if isinstance(e, Malformed)]


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
    for index, data in enumerate(raw_answers):
        raw_id = data.get("id")
        answer_id = str(raw_id) if isinstance(raw_id, (str, int, float)) and not isinstance(raw_id, bool) \
            else f"#{index + 1}"
        printable = one_line(answer_id) == answer_id and "|" not in answer_id and 0 < len(answer_id) <= ID_MAX
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
            entries.append(_answer(t, answer_id, defaults, key_dir=path.parent))
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


def _answer(t: Table, answer_id: str, defaults: Settings, *, key_dir: Path) -> Answer:
    kind = t.string("compute", choices=tuple(KINDS))
    _, fields = KINDS[kind]
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
    return Answer(id=answer_id, kind=kind, question=question, expected=_expected(t, question, settings),
                  settings=settings, reproducible=t.boolean("reproducible", True), note=t.string("note", ""),
                  source=t.string("source", ""))


def _expected(t: Table, question: Question, settings: Settings) -> dict[str, Printed] | None:
    if not t.has("expected"):
        return None
    names = parts(question)
    raw = t.data["expected"]
    if names == ("value",):
        return {"value": _printed(t, "expected", raw, question, "value", settings)}
    if not isinstance(raw, dict):
        raise t.error("expected", f"a table of parameters {{ {', '.join(f'{n} = ...' for n in names)} }}", raw)
    for name in raw:
        if name not in names:
            raise t.error(f"expected.{name}", f"one of the parameters {list(names)}", name)
    return {name: _printed(t, f"expected.{name}", raw[name], question, name, settings) for name in names
            if name in raw}


def _printed(t: Table, field: str, raw: object, question: Question, part: str, settings: Settings) -> Printed:
    try:
        printed = parse_printed(raw, printed_precision=settings.printed_precision)
    except PrintedError as exc:
        raise t.error(field, f"a number, an array or numpy's printed output ({exc})", raw) from None
    shape = part_shape(question, part)
    size = 1
    for n in shape:
        size *= n
    if printed.values.size != size:
        raise t.error(field, f"{size} numbers (the answer has shape {shape})", f"shape {printed.values.shape}")
    return printed
