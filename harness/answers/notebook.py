"""Jupyter notebooks read directly: a saved cell output as the student sees it, and the code
``nn-parity audit`` runs from a submitted notebook.

``read_notebook`` is the one reader of ``.ipynb`` files: the text comes from
``harness.spec.fields.read_text`` (a regular, readable UTF-8 file of at most 64 MiB, never a
FIFO), is parsed by ``nbformat`` as version 4 and validated against its schema; anything else
(not JSON, JSON nested absurdly deep, an unknown ``nbformat`` version, a schema violation) is
``BadInput`` naming the file.

``cell_output`` returns what a code cell printed, selected by exactly one of its execution
count (``In [12]``), its cell id or one of its tags: the ``text/plain`` of its
``execute_result`` (the ``Out[12]:`` value), else its ``stdout`` stream text joined in order,
else ``None`` (the cell exists but shows no output).

``select_code`` decides which statements of a notebook an audit runs (``docs/audit.md``):
the code cells in notebook order, and in each cell the top-level statements that define a
name without doing work — ``import``, ``def``, ``class``, an assignment of a constant (a
literal, a name, an attribute, a lambda, arithmetic of those), ``pass``, a docstring, and
``if``/``try`` blocks made only of these. Every other statement (loading data, training,
plotting, printing, a bare expression) is not run and is reported. The decision is made on
the syntax tree (``ast``), never on the code's text. Cell tags override it: ``skip-audit``
skips the whole cell, ``audit`` runs the whole cell as written. A cell magic (``%%time``)
skips its cell; line magics and shell lines (``%matplotlib inline``, ``!pip install``), which
are not Python, are left out of their cell; a cell that is not valid Python is skipped.

``run_all_problems`` says why a notebook will not "Run All" from a fresh kernel, read from its
cells in order (syntax trees, never by running them): a top-level ``sys.exit()``, ``exit()``,
``quit()``, ``os._exit()`` or ``raise SystemExit`` (the cells after it never run), a saved error
output (the cell raised when it was last run), a cell that is not valid Python, and a name a cell
uses (at the cell's top level: not inside a function body, which runs when called) before a later
statement or cell defines it (it ran out of order). ``select_code`` lists them beside the code it
leaves out, and a key whose ``expected`` reads a notebook warns with them.
"""
from __future__ import annotations

import ast
import builtins
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from harness.answers.sandbox import Cell
from harness.errors import BadInput
from harness.spec.fields import read_text

SKIP_TAG = "skip-audit"  # a cell tagged so is never run by an audit
RUN_TAG = "audit"  # a cell tagged so is run whole, as written
_WHAT = "Jupyter notebook (.ipynb)"
_MAGICS = ("%", "!")  # IPython line magics and shell escapes: not Python


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    """The notebook at ``path``, parsed as nbformat version 4 and validated; ``BadInput`` otherwise."""
    text = read_text(path, what=_WHAT)
    with warnings.catch_warnings():  # nbformat warns (on stderr) about what it repairs or upgrades
        warnings.simplefilter("ignore")
        try:
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
        except RecursionError:
            raise BadInput(path, "", "a notebook (JSON) nested at most a few hundred levels deep",
                           "deeper nesting") from None
        except Exception as exc:  # nbformat parses untrusted JSON: whatever it raises, the file is no notebook
            raise BadInput(path, "", f"a valid {_WHAT} in nbformat 4 (JSON)", _reason(exc)) from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4:
        raise BadInput(path, "nbformat", "4", nb.get("nbformat") if isinstance(nb, dict) else type(nb).__name__)
    return nbformat.from_dict(nb)  # a notebook upgraded from nbformat 3 is a plain dict: attribute access for all


def cell_output(nb: nbformat.NotebookNode, *, file: str | Path, execution_count: int | None = None,
                cell_id: str | None = None, tag: str | None = None) -> str | None:
    """The output text a student sees under the one code cell selected by exactly one of
    ``execution_count``, ``cell_id`` or ``tag``: its ``execute_result``'s ``text/plain``, else its
    ``stdout`` stream text, else ``None``. ``BadInput`` (naming ``file`` and the selector) when no
    code cell or several match."""
    chosen = [(name, value) for name, value in (("execution_count", execution_count), ("cell_id", cell_id),
                                                 ("tag", tag)) if value is not None]
    if len(chosen) != 1:
        raise BadInput(file, "cell", "exactly one of an execution count, a cell id or a tag",
                       ", ".join(name for name, _ in chosen) or "none")
    name, value = chosen[0]
    where = _selector_field(name, value)
    matches = [cell for cell in nb.cells if cell.get("cell_type") == "code" and _matches(cell, name, value)]
    if not matches:
        raise BadInput(file, where, "a code cell with this " + name.replace("_", " "), "no such cell")
    if len(matches) > 1:
        raise BadInput(file, where, "exactly one code cell with this " + name.replace("_", " "),
                       f"{len(matches)} cells")
    return output_text(matches[0])


def output_text(cell: nbformat.NotebookNode) -> str | None:
    """A code cell's output as shown: ``execute_result`` ``text/plain``, else ``stdout``, else ``None``."""
    outputs = cell.get("outputs", [])
    for output in outputs:
        if output.get("output_type") == "execute_result" and "text/plain" in output.get("data", {}):
            return _text(output["data"]["text/plain"])
    streams = [_text(o.get("text", "")) for o in outputs
               if o.get("output_type") == "stream" and o.get("name") == "stdout"]
    return "".join(streams) if streams else None


def cell_label(cell: nbformat.NotebookNode, index: int) -> str:
    """``cell 7 (In [34])``: the cell's position among all cells (from 1) and its execution count."""
    count = cell.get("execution_count")
    return f"cell {index + 1}" + (f" (In [{count}])" if count is not None else "")


# --- the code an audit runs ---------------------------------------------------------------


@dataclass
class Selection:
    """What ``select_code`` runs from a notebook, one line per cell (or part of one) it does not run, and
    one line per reason the notebook will not Run All (``run_all_problems``, also listed in ``skipped``)."""
    cells: list[Cell] = field(default_factory=list)  # sources with line magics made `pass`
    skipped: list[str] = field(default_factory=list)
    run_all: list[str] = field(default_factory=list)


def select_code(nb: nbformat.NotebookNode) -> Selection:
    """The statements of ``nb`` an audit runs (see the module), in notebook order."""
    selection = Selection()
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        label = cell_label(cell, index)
        tags = list(cell.get("metadata", {}).get("tags", []))
        source = _text(cell.get("source", ""))
        if not source.strip():
            continue
        if SKIP_TAG in tags:
            selection.skipped.append(f"{label}: skipped (tagged {SKIP_TAG})")
            continue
        if source.lstrip().startswith("%%"):
            magic = source.lstrip().split(None, 1)[0]
            selection.skipped.append(f"{label}: skipped (cell magic {magic})")
            continue
        tree, source, removed = _parse(source)
        if isinstance(tree, SyntaxError):
            selection.skipped.append(f"{label}: skipped (not valid Python: {tree.msg}, line {tree.lineno})")
            continue
        if removed:
            selection.skipped.append(f"{label}: left out {_lines(removed)} (IPython magic or shell command)")
        if RUN_TAG in tags:
            selection.cells.append(Cell(label, source, None))
            continue
        keep = [i for i, stmt in enumerate(tree.body) if defines_only(stmt)]
        dropped = [stmt for i, stmt in enumerate(tree.body) if i not in keep]
        if dropped and not keep:
            selection.skipped.append(f"{label}: skipped ({_kind(dropped)})")
        elif dropped:
            selection.skipped.append(f"{label}: left out {_lines(_statement_lines(dropped))} ({_kind(dropped)})")
        if keep:
            selection.cells.append(Cell(label, source, keep))
    selection.run_all = run_all_problems(nb)
    selection.skipped += [f"will not Run All: {problem}" for problem in selection.run_all]
    return selection


# --- whether the notebook runs from top to bottom -----------------------------------------

_EXITS = {"exit", "quit", "_exit"}  # sys.exit, exit, quit, os._exit
_NOTEBOOK_NAMES = {"display", "get_ipython", "In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_ih", "_oh",
                   "__name__", "__file__", "__builtins__"}  # what IPython defines in a fresh kernel


def run_all_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Why ``nb`` will not run from top to bottom in a fresh kernel, one line each, in notebook order
    (see the module)."""
    cells: list[tuple[str, nbformat.NotebookNode, ast.Module | None, bool]] = []
    for index, cell in enumerate(nb.cells):
        source = _text(cell.get("source", ""))
        if cell.get("cell_type") != "code" or not source.strip():
            continue
        tree = None if source.lstrip().startswith("%%") else _parse(source)[0]
        cells.append((cell_label(cell, index), cell, tree if isinstance(tree, ast.Module) else None,
                      isinstance(tree, SyntaxError)))
    # every top-level statement in run order: (cell, its label, the statement, the names it defines)
    order = [(k, label, stmt, _stored(stmt)) for k, (label, _, tree, _) in enumerate(cells) if tree is not None
             for stmt in tree.body]
    problems: list[str] = []
    defined = set(dir(builtins)) | _NOTEBOOK_NAMES
    position = 0
    for k, (label, cell, tree, invalid) in enumerate(cells):
        if invalid:
            problems.append(f"{label}: not valid Python: Run All stops there")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            value = (str(errors[0].get("evalue", "")).strip().splitlines() or [""])[0][:200]
            problems.append(f"{label}: its saved output is an error ({errors[0].get('ename', 'an exception')}: "
                            f"{value}): Run All stops there")
        for _ in ([] if tree is None else tree.body):
            _, _, stmt, names = order[position]
            for name, line in _loads(stmt):
                if name in defined or name in names:
                    continue
                later = next((o for o in order[position + 1:] if name in o[3]), None)
                if later is not None:
                    where = f"line {later[2].lineno} of this cell" if later[0] == k else later[1]
                    problems.append(f"{label}: line {line} uses {name!r} before {where} defines it (it ran out "
                                    "of order)")
                    defined.add(name)  # said once
            for call, line in _exits(stmt):
                problems.append(f"{label}: line {line}: {call} ends Run All there (the cells after it do not run)")
            defined |= names
            position += 1
    return problems


def _executed(node: ast.AST):
    """The nodes of a top-level statement that run when the cell runs: not the bodies of functions and
    lambdas (they run when called), but their decorators and defaults."""
    todo = [node]
    while todo:
        current = todo.pop()
        yield current
        if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo += [*current.decorator_list, *current.args.defaults,
                     *(d for d in current.args.kw_defaults if d is not None)]
        elif isinstance(current, ast.Lambda):
            todo += [*current.args.defaults, *(d for d in current.args.kw_defaults if d is not None)]
        else:
            todo += list(ast.iter_child_nodes(current))


def _stored(stmt: ast.stmt) -> set[str]:
    """The names a top-level statement defines when it runs."""
    names: set[str] = set()
    for node in _executed(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name != "*"}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
    return names


def _loads(stmt: ast.stmt) -> list[tuple[str, int]]:
    """(name, line) of every name a top-level statement reads when it runs (class bodies run, methods not)."""
    return sorted({(node.id, node.lineno) for node in _executed(stmt)
                   if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}, key=lambda x: (x[1], x[0]))


def _exits(stmt: ast.stmt) -> list[tuple[str, int]]:
    """(what, line) of the calls that end the kernel's run when the statement runs."""
    found = []
    for node in _executed(stmt):
        if isinstance(node, ast.Call) and _called(node.func) in _EXITS:
            found.append((f"{ast.unparse(node)}", node.lineno))
        elif isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc):
            found.append((f"raise {ast.unparse(node.exc)}", node.lineno))
    return sorted(found, key=lambda x: x[1])


def defines_only(stmt: ast.stmt) -> bool:
    """Whether running ``stmt`` only defines names: no data loaded, no training, no plot, no output."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
        return True
    if isinstance(stmt, ast.Assign):
        return _constant(stmt.value)
    if isinstance(stmt, ast.AnnAssign):
        return stmt.value is None or _constant(stmt.value)
    if isinstance(stmt, ast.Expr):  # a docstring or a comment-like string; any other expression shows a value
        return isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
    if isinstance(stmt, ast.If):
        return _constant(stmt.test) and all(defines_only(s) for s in [*stmt.body, *stmt.orelse])
    if isinstance(stmt, ast.Try):
        blocks = [*stmt.body, *stmt.orelse, *stmt.finalbody, *(s for h in stmt.handlers for s in h.body)]
        return all(defines_only(s) for s in blocks)
    return False


def _constant(node: ast.expr) -> bool:
    """A literal, a name, an attribute of one, a lambda, or containers and arithmetic of these: no call."""
    if isinstance(node, (ast.Constant, ast.Name, ast.Lambda)):
        return True
    if isinstance(node, ast.Attribute):
        return _constant(node.value)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_constant(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _constant(k) for k in node.keys) and all(_constant(v) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return _constant(node.operand)
    if isinstance(node, ast.BinOp):
        return _constant(node.left) and _constant(node.right)
    if isinstance(node, ast.BoolOp):
        return all(_constant(v) for v in node.values)
    if isinstance(node, ast.Compare):
        return _constant(node.left) and all(_constant(c) for c in node.comparators)
    return False


def _parse(source: str) -> tuple[ast.Module | SyntaxError, str, list[int]]:
    """(the tree or the syntax error, the source run, the line numbers of magics left out)."""
    try:
        return ast.parse(source), source, []
    except SyntaxError as error:
        first = error
    except ValueError as error:  # e.g. a NUL character in the source
        return SyntaxError(str(error)), source, []
    lines = source.splitlines()
    removed = [n for n, line in enumerate(lines, 1) if line.lstrip().startswith(_MAGICS)]
    if not removed:
        return first, source, []
    for n in removed:  # kept as `pass` at the same indentation: line numbers and blocks stay as written
        line = lines[n - 1]
        lines[n - 1] = line[: len(line) - len(line.lstrip())] + "pass"
    stripped = "\n".join(lines) + "\n"
    try:
        return ast.parse(stripped), stripped, removed
    except (SyntaxError, ValueError):
        return first, source, []


def _kind(statements: list[ast.stmt]) -> str:
    """What the statements left out do, in a few words, from their syntax trees."""
    names = {n.id for s in statements for n in ast.walk(s) if isinstance(n, ast.Name)}
    attributes = {n.attr for s in statements for n in ast.walk(s) if isinstance(n, ast.Attribute)}
    calls = {_called(n.func) for s in statements for n in ast.walk(s) if isinstance(n, ast.Call)}
    loops = any(isinstance(n, (ast.For, ast.While)) for s in statements for n in ast.walk(s))
    if calls & _EXITS or any(isinstance(n, ast.Raise) for s in statements for n in ast.walk(s)
                             if isinstance(n, ast.Raise) and n.exc is not None and "SystemExit" in ast.unparse(n.exc)):
        return "ends the notebook's run"
    if names & {"plt", "sns", "matplotlib"} or calls & {"plot", "scatter", "imshow", "show", "figure", "subplots"}:
        return "plots"
    if calls & {"fit", "train", "train_on_batch", "backward", "step"} or loops:
        return "trains or loops"
    if calls & {"open", "load", "read_csv", "loadtxt", "genfromtxt", "read_pickle"} or "load" in attributes:
        return "reads files"
    if "print" in calls:
        return "prints"
    if all(isinstance(s, ast.Expr) for s in statements):
        return "shows a value"
    if calls:
        return "calls code, not a definition"
    return "runs code, not a definition"


def _called(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _statement_lines(statements: list[ast.stmt]) -> list[int]:
    lines: list[int] = []
    for stmt in statements:
        lines.extend(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def _lines(numbers: list[int]) -> str:
    """``line 3`` or ``lines 1-2, 5``."""
    ranges: list[list[int]] = []
    for n in sorted(set(numbers)):
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)
    return ("line " if len(ranges) == 1 and ranges[0][0] == ranges[0][1] else "lines ") + text


def _selector_field(name: str, value: object) -> str:
    if name == "execution_count":
        return f"cell In [{value}]"
    if name == "cell_id":
        return f"cell id {value!r}"
    return f"cell tag {value!r}"


def _matches(cell: nbformat.NotebookNode, name: str, value: object) -> bool:
    if name == "execution_count":
        return cell.get("execution_count") == value
    if name == "cell_id":
        return cell.get("id") == value
    return value in cell.get("metadata", {}).get("tags", [])


def _text(value: Any) -> str:
    """A multiline string as stored: one string, or (in files nbformat did not write) a list of lines."""
    return "".join(value) if isinstance(value, list) else str(value)


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]
