"""What ``nn-parity audit --kind`` calls, and the submission judged as one more implementation.

Every kind has one interface in the ``(params, X, y)`` style; ``params`` is a dict by reference
name (``layers.<i>.kernel`` of shape ``(n_in, n_out)``, ``layers.<i>.bias``), float64 arrays:

``forward(params, X) -> outputs``
    the network's output for every row of ``X`` (the last layer's activations, ``(rows, units)``;
    ``(rows,)`` is read as one unit). Called at the evaluation points (below) on the whole data.
``loss(params, X, y) -> float``
    the scenario's batch-mean loss on ``(X, y)``. Called at the evaluation points, each on its batch.
``backward(params, X, y) -> gradients``
    the gradient audit (``harness.answers.audit``, unchanged).
``step(params, X, y, lr) -> new params``
    one plain-SGD update on the batch ``(X, y)`` (keyed by reference names or the labs' labels
    ``w1``/``b1``..., or a tuple in parameter order, as gradients are). Called at the evaluation
    points; a scenario whose optimizer is not plain SGD is refused (a step function has no state).
``train(params, X, y, lr, epochs, batch_size) -> history``
    the whole training loop, called once from the initial parameters. ``X, y`` are the scenario's
    data in the order of the plan's first epoch; the loop must take its batches as consecutive
    slices ``X[i:i + batch_size]`` (the last, partial batch kept), epoch after epoch in that same
    order, and make ``epochs x ceil(rows / batch_size)`` updates (full batch: ``batch_size`` is
    the number of rows). It returns either

    * the per-step history: a list with one record per update, each a dict with ``"loss"`` (the
      batch's loss before the update), ``"params"`` (the parameters after it, as gradients are
      given) and optionally ``"grads"`` (the gradient the update used): every step's loss and
      parameters are compared, and the gradients when given; or
    * ``(params, losses)`` (or ``{"params": ..., "losses": [...]}``): the final parameters and the
      per-step losses: the losses are compared step by step and the final parameters at the end.

    When the plan reshuffles the rows every epoch, only the first epoch's order can be given, so
    only the first epoch's steps are compared and the audit says so. When the scenario stops
    early, the steps after the reference's stop are not compared (and said so); a loop that makes
    fewer updates than the reference differs at its first missing step.

Evaluation points (forward, loss, step): the reference run's parameters before steps 0, 1, 2
and 3 (fewer when the scenario has fewer steps; the initial parameters alone for a forward-only
scenario), so that a mistake is measured at several points, not fitted to one number.

The submission is compared with every implementation (numpy, Keras, torch) with the project's
agreement rule (``harness.judge.tolerance``): ``train`` runs step by step with
``harness.judge.compare.compare`` and the scenario's float64 tolerance, the other kinds point by
point with the audit's (rtol 1e-7, atol 1e-9). What is wrong is localised (first step or point,
stage in ``harness.run.trajectory.trace_stages``' names), its suspect named by the project's
majority rule (``harness.judge.diagnosis.suspects`` for ``train``), and its cause named only
when a replay with that mistake (``harness.answers.mistakes``) reproduces what the submission
computed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from harness.answers.audit import (
    ATOL,
    RTOL,
    AuditResult,
    Independent,
    ParamAudit,
    check_trains,
    independent,
    initial_batch,
    judge,
    labels_of,
)
from harness.answers.mistakes import (
    ForwardMistake,
    LossMistake,
    Params,
    Step,
    UpdateMistake,
    apply,
    forward_mistakes,
    gradients,
    loss_mistakes,
    plain_sgd,
    update_mistakes,
)
from harness.answers.sandbox import Argument, Called, Opaque, Returned, read_returned, type_name
from harness.errors import BadInput, one_line
from harness.judge.compare import Comparison, compare
from harness.judge.diagnosis import Localisation, StageDiff, suspects
from harness.judge.tolerance import Tolerance, compare_elements
from harness.run.adapters import FRAMEWORKS, REFERENCE, adapter
from harness.run.budget import check_budget
from harness.run.plan import TrainingPlan, make_plan
from harness.run.runner import ScenarioResult, reference_label, run_scenario
from harness.run.trajectory import Trajectory, trace_stages
from harness.spec.scenario import Scenario, batch_rows

KINDS = ("forward", "loss", "backward", "step", "train")
INTERFACES = {
    "forward": "forward(params, X) -> outputs",
    "loss": "loss(params, X, y) -> float",
    "backward": "backward(params, X, y) -> gradients",
    "step": "step(params, X, y, lr) -> new params",
    "train": "train(params, X, y, lr, epochs, batch_size) -> history, or (params, losses)",
}
SUBMISSION = "submission"  # the submission's label beside the implementations'
POINTS = 4  # evaluation points of forward, loss and step


@dataclass
class Outcome:
    """What one kind's judging found, before it becomes an ``AuditResult``."""
    quantities: list[ParamAudit]
    step: int | None = None  # the first step (train) or evaluation point that differs
    stage: str = ""
    suspect: str = ""
    cause: str = ""
    evidence: str = ""
    compared: str = ""
    right: list[str] = field(default_factory=list)  # what agrees before the first difference
    notes: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)


class KindAudit:
    """One kind's audit of one scenario: the calls every submission gets, what every implementation
    computes (``expect``: once for a whole batch), and the judging of what a submission returned."""

    kind = ""
    unit = "point"  # what ``Outcome.step`` counts

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.labels = labels_of(scenario)
        self.tolerance = Tolerance(rtol=RTOL, atol=ATOL)
        self.plan = make_plan(scenario, "float64")

    def calls(self) -> list[list[Argument]]:
        raise NotImplementedError

    def expect(self) -> None:
        """Compute what every implementation computes on the calls (the frameworks load here)."""

    def outcome(self, values: list[object]) -> Outcome:
        raise NotImplementedError

    def judge(self, function: str, called: Called) -> AuditResult:
        if called.error:
            return self.crashed(function, one_line(called.error), notes=[one_line(n) for n in called.notes])
        try:
            outcome = self.outcome(called.values)
        except Unreadable as exc:
            return self.crashed(function, one_line(str(exc)), notes=[one_line(n) for n in called.notes])
        return AuditResult(scenario=self.scenario.name, function=function, params=outcome.quantities,
                           source_spread={}, diagnosis=outcome.cause, notes=[*called.notes, *outcome.notes],
                           kind=self.kind, step=outcome.step, unit=self.unit, stage=outcome.stage,
                           suspect=outcome.suspect, evidence=outcome.evidence, compared=outcome.compared,
                           right=outcome.right,
                           comparisons=[c.as_dict() for c in outcome.comparisons])

    def quantity_names(self) -> list[tuple[str, str]]:
        """(name, label) of every quantity scored, one point each."""
        raise NotImplementedError

    def crashed(self, function: str, reason: str, *, file: str = "", notes: list[str] | None = None) -> AuditResult:
        params = [ParamAudit(name=name, label=label, status="crashed", message=reason)
                  for name, label in self.quantity_names()]
        return AuditResult(scenario=self.scenario.name, function=function, params=params, source_spread={},
                           crash=reason, file=file, notes=notes or [], kind=self.kind, unit=self.unit)


class Unreadable(Exception):
    """What the function returned is not what its kind returns (the row's crash reason)."""


def kind_audit(kind: str, scenario: Scenario, *, rtol: float = RTOL, atol: float = ATOL) -> KindAudit:
    """The audit of ``kind`` on ``scenario``; a scenario the kind cannot audit is ``BadInput``.
    ``rtol``, ``atol``: the gradient audit's agreement rule (``backward``)."""
    check_budget(scenario, runs_per_dtype=1, dtypes=("float64",))
    if kind == "backward":
        return BackwardAudit(scenario, rtol=rtol, atol=atol)
    audits: dict[str, Callable[[Scenario], KindAudit]] = {"forward": ForwardAudit, "loss": LossAudit,
                                                          "step": StepAudit, "train": TrainAudit}
    return audits[kind](scenario)


class BackwardAudit(KindAudit):
    """The gradient audit (``harness.answers.audit``): the first batch at the initial parameters,
    against the reference, the frameworks and finite differences."""

    kind = "backward"

    def __init__(self, scenario: Scenario, *, rtol: float, atol: float) -> None:
        check_trains(scenario)
        super().__init__(scenario)
        self.rtol, self.atol = rtol, atol
        self.batch = initial_batch(scenario)
        self.expected: Independent | None = None

    def quantity_names(self) -> list[tuple[str, str]]:
        return list(self.labels.items())

    def calls(self) -> list[list[Argument]]:
        params, X, y = self.batch
        return [[{name: params[name] for name in self.labels}, X, y]]

    def expect(self) -> None:
        self.expected = independent(self.scenario, self.batch)

    def judge(self, function: str, called: Called) -> AuditResult:
        assert self.expected is not None, "expect() first"
        returned = Returned(error=called.error, notes=called.notes) if called.error else \
            replace(read_returned(called.values[0], self.labels), notes=called.notes)
        return judge(self.scenario, function, returned, self.expected, rtol=self.rtol, atol=self.atol)


# --- evaluation points: forward, loss, step -------------------------------------------------


class PointAudit(KindAudit):
    """forward, loss and step: called at the reference's parameters before steps 0..3, compared
    point by point with every implementation and with the replays of each known mistake."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        if scenario.trains:
            n = min(POINTS, self.plan.max_steps)
            run = adapter(REFERENCE).run(self.plan.first_steps(n))
            self.points = [run.params_before(k) for k in range(max(run.steps, 1))]
            self.batches = [self.plan.batch(k) for k in range(len(self.points))]
        else:
            self.points, self.batches = [dict(self.plan.initial_params)], [(self.plan.X, self.plan.y)]
        self.expected: dict[str, list[dict[str, np.ndarray]]] = {}  # source -> per point, per quantity

    def sources(self) -> list[str]:
        return [fw for fw in FRAMEWORKS if adapter(fw).available() is None]

    def expect(self) -> None:
        self.expected = {source: [self.compute(source, k) for k in range(len(self.points))]
                         for source in self.sources()}

    def compute(self, source: str, k: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def read(self, value: object) -> dict[str, np.ndarray]:
        """One call's return value by quantity (raises ``Unreadable``)."""
        raise NotImplementedError

    def mistakes(self) -> list[tuple[str, Callable[[int], dict[str, np.ndarray]], str]]:
        """(name, the replay's quantities at point k, what else gives the same values)."""
        return []

    def stage(self, quantity: str) -> str:
        raise NotImplementedError

    def outcome(self, values: list[object]) -> Outcome:
        submitted = [self.read(v) for v in values]
        reference = self.expected[REFERENCE]
        quantities: list[ParamAudit] = []
        first: tuple[int, str] | None = None
        notes: list[str] = []
        for name, label in self.quantity_names():
            audit = ParamAudit(name=name, label=label, status="ok")
            quantities.append(audit)
            got = [s.get(name) for s in submitted]
            if any(g is None for g in got):
                audit.status, audit.message = "missing", f"no value returned for {name} (or {label})"
                continue
            shaped = [_shaped(g, reference[k][name]) for k, g in enumerate(got)]
            if any(isinstance(s, str) for s in shaped):
                audit.status = "wrong shape"
                audit.message = next(s for s in shaped if isinstance(s, str))
                continue
            arrays = [s for s in shaped if isinstance(s, np.ndarray)]
            if not all(np.all(np.isfinite(a)) for a in arrays):
                audit.status = "not finite"
                continue
            audit.submitted = arrays[0]
            audit.diffs = {source: max(float(np.max(np.abs(a - self.expected[source][k][name])))
                                       for k, a in enumerate(arrays)) for source in self.expected}
            bad = [k for k, a in enumerate(arrays) if _differs(a, reference[k][name], self.tolerance)]
            if bad:
                audit.status = "wrong"
                scale = max(float(np.max(np.abs(reference[k][name]))) for k in range(len(arrays)))
                audit.max_rel = audit.diffs[REFERENCE] / scale if scale else None
                if first is None or bad[0] < first[0]:
                    first = (bad[0], name)
        out = Outcome(quantities=quantities, compared=self.describe_points(), notes=notes)
        if all(q.ok for q in quantities):
            return out
        arrays_by_point = [{q.name: _shaped(submitted[k][q.name], reference[k][q.name]) for q in quantities
                            if q.status in ("ok", "wrong")} for k in range(len(submitted))]
        if first is not None:
            out.step, out.stage = first[0], self.stage(first[1])
            out.right = [f"point {k}: every quantity" for k in range(first[0])]
            out.suspect = self.suspect(arrays_by_point, out.step, out.stage)
        out.cause, out.evidence = self.cause(arrays_by_point)
        return out

    def describe_points(self) -> str:
        n = len(self.points)
        return (f"{n} evaluation point{'s' if n > 1 else ''}: the reference's parameters before step"
                f"{'s 0-' + str(n - 1) if n > 1 else ' 0'}")

    def suspect(self, submitted: list[dict[str, Shaped]], k: int, stage: str) -> str:
        """The project's majority rule over the submission and the implementations at point ``k``."""
        others = [s for s in self.expected if s != REFERENCE]
        agreeing = [s for s in others if not any(_differs(self.expected[s][j][q], self.expected[REFERENCE][j][q],
                                                          self.tolerance)
                                                 for j in range(len(self.points)) for q in self.expected[s][j])]
        implementations = [REFERENCE, *agreeing]
        if len(implementations) < 2 or len(implementations) < len(self.expected):
            return (f"no majority: only {', '.join(self.expected)} computed it, and they do not all agree"
                    if len(implementations) < len(self.expected) else
                    f"no majority: only the submission and {REFERENCE} computed it")
        names = _names(implementations)
        return f"{SUBMISSION} differs from {names}, which agree: suspect {SUBMISSION}, from point {k} at `{stage}`"

    def cause(self, submitted: list[dict[str, Shaped]]) -> tuple[str, str]:
        """The first known mistake whose replay gives what the submission computed at every point."""
        for name, replay, alike in self.mistakes():
            worst, matches = 0.0, True
            for k, values in enumerate(submitted):
                expected = replay(k)
                for q, value in values.items():
                    if not isinstance(value, np.ndarray) or q not in expected:
                        continue
                    if value.shape != np.shape(expected[q]) or _differs(value, expected[q], self.tolerance):
                        matches = False
                        break
                    worst = max(worst, float(np.max(np.abs(value - expected[q]))))
                if not matches:
                    break
            if matches and any(values for values in submitted):
                named = f"{name} ({alike})" if alike else name
                return named, (f"at each of the {len(submitted)} evaluation points, what you returned equals the "
                               f"reference's computation with that mistake made, computed independently of your "
                               f"code (largest difference {worst:.1e}, within rtol {self.tolerance.rtol:g}, "
                               f"atol {self.tolerance.atol:g})")
        return "", ""


class ForwardAudit(PointAudit):
    kind = "forward"

    def quantity_names(self) -> list[tuple[str, str]]:
        return [("output", f"output of layers.{len(self.scenario.layers) - 1}")]

    def calls(self) -> list[list[Argument]]:
        return [[dict(p), self.plan.X] for p in self.points]

    def compute(self, source: str, k: int) -> dict[str, np.ndarray]:
        return {"output": np.asarray(adapter(source).forward(self.scenario, self.points[k], self.plan.X)[-1],
                                     dtype=np.float64)}

    def read(self, value: object) -> dict[str, np.ndarray]:
        return {"output": _array(value, "the output")}

    def stage(self, quantity: str) -> str:
        return f"output layers.{len(self.scenario.layers) - 1}"

    def mistakes(self) -> list[tuple[str, Callable[[int], dict[str, np.ndarray]], str]]:
        def replay(mistake: ForwardMistake) -> Callable[[int], dict[str, np.ndarray]]:
            return lambda k: {"output": mistake.output(self.points[k], self.plan.X)}
        return [(m.name, replay(m), "") for m in forward_mistakes(self.scenario)]


class LossAudit(PointAudit):
    kind = "loss"

    def __init__(self, scenario: Scenario) -> None:
        check_trains(scenario)
        super().__init__(scenario)

    def quantity_names(self) -> list[tuple[str, str]]:
        return [("loss", f"loss ({self.scenario.training_spec.loss})")]

    def calls(self) -> list[list[Argument]]:
        return [[dict(p), X, y] for p, (X, y) in zip(self.points, self.batches)]

    def compute(self, source: str, k: int) -> dict[str, np.ndarray]:
        X, y = self.batches[k]
        return {"loss": np.asarray(adapter(source).gradients(self.scenario, self.points[k], X, y)[0],
                                   dtype=np.float64).reshape(())}

    def read(self, value: object) -> dict[str, np.ndarray]:
        array = _array(value, "the loss")
        if array.size != 1:
            raise Unreadable(f"the function returned {array.size} values (shape {array.shape}), not one loss")
        return {"loss": array.reshape(())}

    def stage(self, quantity: str) -> str:
        return "loss"

    def mistakes(self) -> list[tuple[str, Callable[[int], dict[str, np.ndarray]], str]]:
        def replay(mistake: LossMistake) -> Callable[[int], dict[str, np.ndarray]]:
            def at(k: int) -> dict[str, np.ndarray]:
                X, y = self.batches[k]
                outputs = adapter(REFERENCE).forward(self.scenario, self.points[k], X)[-1]
                return {"loss": np.asarray(mistake.value(y, outputs))}
            return at
        return [(m.name, replay(m), "") for m in loss_mistakes(self.scenario)]


class StepAudit(PointAudit):
    kind = "step"

    def __init__(self, scenario: Scenario) -> None:
        check_trains(scenario)
        if not plain_sgd(scenario):
            raise BadInput(scenario.path, "training.optimizer", "plain SGD without momentum for --kind step "
                           "(a step function keeps no optimizer state): audit the loop with --kind train",
                           scenario.training_spec.optimizer.name)
        super().__init__(scenario)
        self.lr = scenario.training_spec.optimizer.learning_rate

    def quantity_names(self) -> list[tuple[str, str]]:
        return list(self.labels.items())

    def calls(self) -> list[list[Argument]]:
        return [[dict(p), X, y, self.lr] for p, (X, y) in zip(self.points, self.batches)]

    def compute(self, source: str, k: int) -> dict[str, np.ndarray]:
        X, y = self.batches[k]
        grads = adapter(source).gradients(self.scenario, self.points[k], X, y)[1]
        return {n: self.points[k][n] - self.lr * np.asarray(grads[n], dtype=np.float64) for n in self.labels}

    def read(self, value: object) -> dict[str, np.ndarray]:
        return _params(value, self.labels, "the new parameters")

    def stage(self, quantity: str) -> str:
        return f"updated {quantity}"

    def mistakes(self) -> list[tuple[str, Callable[[int], dict[str, np.ndarray]], str]]:
        def replay(mistake: UpdateMistake) -> Callable[[int], dict[str, np.ndarray]]:
            def at(k: int) -> dict[str, np.ndarray]:
                X, y = self.batches[k]
                grads = gradients(self.scenario, self.points[k], X, y)[1]
                step = Step(lr=self.lr, grads=grads, rows=X.shape[0], first=grads, total=grads)
                return apply(mistake, step, self.points[k])[1]
            return at
        return [(m.name, replay(m), m.same_updates_as) for m in update_mistakes(self.scenario, loop=False)]


# --- the whole loop: train ---------------------------------------------------------------


class TrainAudit(KindAudit):
    kind = "train"
    unit = "step"

    def __init__(self, scenario: Scenario) -> None:
        check_trains(scenario)
        super().__init__(scenario)
        training = scenario.training_spec
        self.tolerance = scenario.tolerances["float64"]
        self.lr = training.optimizer.learning_rate
        self.batch_size = batch_rows(training, self.plan.X.shape[0])
        order = self.plan.orders[0]
        self.X, self.y = self.plan.X[order], self.plan.y[order]
        self.reshuffled = self.plan.orders.shape[0] > 1 and training.epochs > 1
        self.limit = self.plan.batches_per_epoch if self.reshuffled else self.plan.max_steps
        self.result: ScenarioResult | None = None

    def quantity_names(self) -> list[tuple[str, str]]:
        return [("loss", f"loss ({self.scenario.training_spec.loss}) at every step"), *self.labels.items()]

    def calls(self) -> list[list[Argument]]:
        return [[dict(self.plan.initial_params), self.X, self.y, self.lr, self.scenario.training_spec.epochs,
                 self.batch_size]]

    def expect(self) -> None:
        self.result = run_scenario(self.scenario, frameworks=FRAMEWORKS, dtypes=("float64",))

    def runs(self) -> dict[str, Trajectory]:
        assert self.result is not None, "expect() first"
        return {label: _cut(run, self.limit) for (label, _), run in self.result.runs.items() if run.ok}

    def outcome(self, values: list[object]) -> Outcome:
        history = read_history(values[0], self.labels)
        runs = self.runs()
        reference_name = reference_label(self.result, None) if self.result is not None else None
        if reference_name is None or reference_name not in runs:
            raise Unreadable("the reference run crashed: nothing to compare with")
        reference = runs[reference_name]
        notes = []
        if self.reshuffled:
            notes.append(f"the scenario reshuffles its rows every epoch (shuffle_seed "
                         f"{self.scenario.training_spec.shuffle_seed}): a loop given the first epoch's order can "
                         f"follow the plan in that epoch only, so steps 0-{self.limit - 1} are compared, not the "
                         f"{self.plan.max_steps} of the whole plan")
        mine = history.trajectory(reference, self.plan)
        if mine.steps > reference.steps:
            notes.append(f"your loop made {mine.steps} updates; the first {reference.steps} are compared"
                         + (" (the reference stops early there)" if reference.stopped_early_at is not None else ""))
            mine = _cut(mine, reference.steps)
        comparisons = {label: compare(mine, _strip(run, mine), self.tolerance) for label, run in runs.items()}
        quantities = self._quantities(comparisons, reference_name, history, mine)
        out = Outcome(quantities=quantities, compared=self._compared(history, reference), notes=notes,
                      comparisons=list(comparisons.values()))
        if all(q.ok for q in quantities):
            return out
        c = comparisons[reference_name]
        out.step = c.first_divergent_step if c.first_divergent_step is not None else self._final_step(history)
        out.stage, out.right = self._localise(mine, history, out.step)
        out.suspect = self._suspect(mine, comparisons, out.step, out.stage)
        out.cause, out.evidence = self._cause(mine, history)
        return out

    def _compared(self, history: History, reference: Trajectory) -> str:
        what = "loss and parameters" if not history.final_only else "loss (final parameters at the end)"
        grads = ", and the gradients you recorded" if history.grads else ""
        return f"{reference.steps} steps, {what} at every step{grads}"

    def _final_step(self, history: History) -> int:
        return max(len(history.losses) - 1, 0)

    def _quantities(self, comparisons: dict[str, Comparison], reference_name: str, history: History,
                    mine: Trajectory) -> list[ParamAudit]:
        out = []
        c = comparisons[reference_name]
        steps_differ = c.steps_a != c.steps_b
        for name, label in self.quantity_names():
            audit = ParamAudit(name=name, label=label, status="ok")
            out.append(audit)
            if name in history.unreadable:
                audit.status, audit.message = "wrong shape", history.unreadable[name]
                continue
            if name != "loss" and history.final_only:
                self._final(audit, history, comparisons, mine)
                continue
            quantity = c.quantities.get(name)
            if quantity is None:
                audit.status, audit.message = "missing", f"no {name} (or {label}) in your history"
                continue
            audit.diffs = {label_: comparison.quantities[name].max_abs for label_, comparison in comparisons.items()
                           if name in comparison.quantities}
            audit.max_rel = quantity.max_rel
            if quantity.first_bad_step is not None:
                audit.status, audit.message = "wrong", f"differs from step {quantity.first_bad_step}"
            elif steps_differ:
                audit.status = "wrong"
                audit.message = f"your loop made {c.steps_a} updates, the reference {c.steps_b}"
        return out

    def _final(self, audit: ParamAudit, history: History, comparisons: dict[str, Comparison],
               mine: Trajectory) -> None:
        """A final parameter (the ``(params, losses)`` form) against each implementation's."""
        value = history.final.get(audit.name)
        if value is None:
            audit.status, audit.message = "missing", f"no final {audit.name} (or {audit.label})"
            return
        runs = self.runs()
        audit.diffs = {label: float(np.max(np.abs(value - run.final_params[audit.name]))) for label, run in runs.items()
                       if run.steps == mine.steps}
        reference_name = reference_label(self.result, None) if self.result is not None else None
        run = runs.get(reference_name or "")
        if run is None or run.steps != mine.steps or _differs(value, run.final_params[audit.name], self.tolerance):
            audit.status, audit.message = "wrong", "the final value differs"

    def _localise(self, mine: Trajectory, history: History, step: int) -> tuple[str, list[str]]:
        """Where within ``step`` the submission first differs — its loss, its recorded gradients
        (backpropagation order) or its update — and what agrees before that, against the reference
        computed at the submission's own parameters before the step (its record), on the plan's batch."""
        agreeing = [f"steps 0-{step - 1}: every compared quantity"] if step > 1 else \
            ["step 0: every compared quantity"] if step == 1 else []
        if step >= mine.steps:
            return "the number of steps", agreeing
        if not mine.params:  # the (params, losses) form: the losses are all that was recorded step by step
            return "loss", agreeing
        before = mine.params_before(step)
        X, y = self.plan.batch(step)
        loss, grads = gradients(self.scenario, before, X, y)
        at = f"step {step}"
        if _differs(mine.losses[step], loss, self.tolerance):
            return "loss", agreeing
        agreeing.append(f"{at}: the loss")
        names = [s.split(" ", 1)[1] for s in trace_stages(self.scenario) if s.startswith("gradient ")]
        for name in names if history.grads else []:
            if name in mine.grads and _differs(mine.grads[name][step], grads[name], self.tolerance):
                return f"gradient {name}", agreeing
            if name in mine.grads:
                agreeing.append(f"{at}: the gradient of {self.labels[name]} ({name})")
        expected = apply(None, Step(self.lr, grads, X.shape[0], grads, grads), before)[1] \
            if plain_sgd(self.scenario) else {}
        for name in self.labels:
            if name in mine.params and (name not in expected or _differs(mine.params[name][step], expected[name],
                                                                          self.tolerance)):
                return f"updated {name}", agreeing
        return "updated parameters", agreeing

    def _suspect(self, mine: Trajectory, comparisons: dict[str, Comparison], step: int, stage: str) -> str:
        """The project's majority rule (``harness.judge.diagnosis.suspects``) over the implementations
        and the submission, the submission's pairs localised at ``stage``."""
        if self.result is None:
            return ""
        result = replace(self.result, frameworks=(*self.result.frameworks, SUBMISSION),
                         runs={**self.result.runs, (SUBMISSION, "float64"): mine},
                         comparisons=[*self.result.comparisons, *comparisons.values()])
        where = Localisation(step, [StageDiff(stage, max_abs=0.0, max_rel=0.0, rate=float("inf"),
                                              beyond_tolerance=True)])
        return "; ".join(s.describe() for s in suspects(result, "float64",
                                                        localisations={id(c): where for c in comparisons.values()}))

    def _cause(self, mine: Trajectory, history: History) -> tuple[str, str]:
        """The first known mistake whose replay over the compared steps agrees with the submission's run."""
        for mistake in update_mistakes(self.scenario, loop=True):
            replayed = self._replay(mistake, mine)
            if replayed is None:
                continue
            c = compare(mine, _strip(replayed, mine), self.tolerance)
            grads_agree = not history.grads or all(q.first_bad_step is None for q in c.gradients.values())
            final_agree = not history.final_only or all(
                not _differs(history.final[n], replayed.final_params[n], self.tolerance) for n in history.final)
            if c.agree and grads_agree and final_agree:
                name = mistake.name
                if mistake.same_updates_as and not history.grads:
                    name += f" — {mistake.same_updates_as}: your history records no gradients to tell them apart"
                return name, (f"your {c.steps_a} steps agree with the reference's loop with that mistake made, "
                              f"computed independently of your code, at every step (largest difference "
                              f"{c.max_abs:.1e}, within {self.tolerance.describe()}), while they differ from the "
                              f"reference's own loop")
        return "", ""

    def _replay(self, mistake: UpdateMistake, mine: Trajectory) -> Trajectory | None:
        """The reference's loop with ``mistake`` made, over the submission's steps; None when it
        clearly parts from the submission (a thousand times the tolerance) before the end."""
        params = {k: v.copy() for k, v in self.plan.initial_params.items()}
        steps = mine.steps
        losses = np.empty(steps)
        record = {k: np.empty((steps, *v.shape)) for k, v in params.items()}
        used_record = {k: np.empty((steps, *v.shape)) for k, v in params.items()}
        first: Params = {}
        total: Params = {}
        loose = Tolerance(rtol=self.tolerance.rtol * 1000, atol=self.tolerance.atol * 1000,
                          ulps=self.tolerance.ulps * 1000, eps=self.tolerance.eps)
        for t in range(steps):
            X, y = self.plan.batch(t)
            loss, grads = gradients(self.scenario, params, X, y)
            first = first or grads
            with np.errstate(all="ignore"):
                total = {k: total[k] + v for k, v in grads.items()} if total else dict(grads)
            used, params = apply(mistake, Step(self.lr, grads, X.shape[0], first, total), params)
            losses[t] = loss
            for k in params:
                record[k][t], used_record[k][t] = params[k], used[k]
            if _differs(mine.losses[t], loss, loose) or any(
                    _differs(mine.params[k][t], params[k], loose) for k in mine.params):
                return None
        run = Trajectory(framework=f"{REFERENCE} with the mistake", dtype="float64", losses=losses,
                         params=record, grads=used_record, initial_params=dict(self.plan.initial_params))
        return run


# --- reading what train returned ---------------------------------------------------------


@dataclass
class History:
    """What a ``train`` returned: per-step losses, and per-step parameters (and gradients) or the
    final parameters only (``final_only``)."""
    losses: list[float]
    params: dict[str, list[np.ndarray]] = field(default_factory=dict)
    grads: dict[str, list[np.ndarray]] = field(default_factory=dict)
    final: dict[str, np.ndarray] = field(default_factory=dict)
    final_only: bool = False
    unreadable: dict[str, str] = field(default_factory=dict)  # quantity -> why its values cannot be read

    def trajectory(self, reference: Trajectory, plan: TrainingPlan) -> Trajectory:
        """The submission's run as a ``Trajectory`` (a quantity whose shape is not the reference's is
        left out and reported in ``unreadable``)."""
        steps = len(self.losses)
        run = Trajectory(framework=SUBMISSION, dtype="float64", losses=np.asarray(self.losses, dtype=np.float64),
                         initial_params={k: v.copy() for k, v in plan.initial_params.items()})
        for name, values in self.params.items():
            shape = plan.initial_params[name].shape
            bad = next((v.shape for v in values if np.squeeze(v).shape != np.squeeze(np.zeros(shape)).shape), None)
            if bad is not None:
                self.unreadable.setdefault(name, f"shape {bad}, expected {shape}")
            elif len(values) == steps:
                run.params[name] = np.stack([v.reshape(shape) for v in values]) if values else np.zeros((0, *shape))
        for name, values in self.grads.items():  # a single number is what the update broadcast over the parameter
            shape = plan.initial_params[name].shape
            fits = all(v.size == 1 or np.squeeze(v).shape == np.squeeze(np.zeros(shape)).shape for v in values)
            if fits and len(values) == steps:
                run.grads[name] = np.stack([np.broadcast_to(v.reshape(()) if v.size == 1 else v.reshape(shape), shape)
                                            for v in values]) if values else np.zeros((0, *shape))
        for name, value in list(self.final.items()):
            shape = plan.initial_params[name].shape
            if np.squeeze(value).shape != np.squeeze(np.zeros(shape)).shape:
                self.unreadable.setdefault(name, f"shape {value.shape}, expected {shape}")
                del self.final[name]
            else:
                self.final[name] = value.reshape(shape)
        return run


def read_history(value: object, labels: dict[str, str]) -> History:
    """``train``'s return value (the module says which forms); anything else raises ``Unreadable``."""
    form = ("expected a list of per-step records {'loss', 'params'[, 'grads']} or (params, losses)")
    if isinstance(value, dict) and "params" in value and "losses" in value:
        value = (value["params"], value["losses"])
    if isinstance(value, (list, tuple)) and value and all(isinstance(r, dict) and "loss" in r for r in value):
        history = History(losses=[_number(r["loss"], f"step {t}'s loss") for t, r in enumerate(value)])
        for key, target in (("params", history.params), ("grads", history.grads)):
            if key not in value[0]:
                continue
            for t, record in enumerate(value):
                if key not in record:
                    raise Unreadable(f"step {t}'s record has no {key!r} (step 0's has)")
                returned = read_returned(record[key], labels)
                if returned.error:
                    raise Unreadable(f"step {t}'s {key}: {returned.error.removeprefix('the function returned ')}")
                for name in labels:
                    if name in returned.unreadable:
                        history.unreadable.setdefault(name, f"step {t}: {returned.unreadable[name]}")
                    elif name in returned.arrays:
                        target.setdefault(name, []).append(returned.arrays[name])
        return history
    if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[1], (list, tuple, np.ndarray)):
        final, losses = value
        returned = read_returned(final, labels)
        if returned.error:
            raise Unreadable(f"the final parameters: {returned.error.removeprefix('the function returned ')}")
        array = _array(losses, "the losses")
        return History(losses=[float(v) for v in array.ravel()], final=dict(returned.arrays), final_only=True,
                       unreadable=dict(returned.unreadable))
    raise Unreadable(f"the function returned a {type_name(value)}: {form}")


# --- helpers -------------------------------------------------------------------------------


def _number(value: object, what: str) -> float:
    array = _array(value, what)
    if array.size != 1:
        raise Unreadable(f"{what} has {array.size} values, expected one number")
    return float(array.reshape(()))


def _array(value: object, what: str) -> np.ndarray:
    if isinstance(value, Opaque):
        raise Unreadable(f"{what} is a {value.type_name}, not numbers ({value.reason})")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise Unreadable(f"{what} is a {type_name(value)}, not numbers ({one_line(str(exc))})") from None


def _params(value: object, labels: dict[str, str], what: str) -> dict[str, np.ndarray]:
    returned = read_returned(value, labels)
    if returned.error:
        raise Unreadable(f"{what}: {returned.error.removeprefix('the function returned ')}")
    return dict(returned.arrays)


Shaped = np.ndarray | str | None  # a value in its expected shape, why it cannot be, or nothing returned


def _shaped(value: np.ndarray | None, expected: np.ndarray) -> Shaped:
    """``value`` in ``expected``'s shape (axes of length 1 may differ), or why it cannot be."""
    if value is None:
        return None
    if np.squeeze(value).shape != np.squeeze(expected).shape:
        return f"shape {value.shape}, expected {expected.shape}"
    return value.reshape(expected.shape)


def _differs(a: object, b: object, tol: Tolerance) -> bool:
    return bool(compare_elements(np.atleast_1d(np.asarray(a, dtype=np.float64)),
                                 np.atleast_1d(np.asarray(b, dtype=np.float64)), tol).bad.any())


def _names(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def _cut(run: Trajectory, steps: int) -> Trajectory:
    """``run``'s first ``steps`` steps."""
    if run.steps <= steps:
        return run
    return replace(run, losses=run.losses[:steps], params={k: v[:steps] for k, v in run.params.items()},
                   grads={k: v[:steps] for k, v in run.grads.items()}, outputs_final=[], stopped_early_at=None)


def _strip(run: Trajectory, mine: Trajectory) -> Trajectory:
    """``run`` with only what the submission recorded (``mine``; its outputs are never recorded):
    the loss, and the parameters and gradients it recorded at every step."""
    return replace(run, outputs_initial=[], outputs_final=[],
                   params={k: v for k, v in run.params.items() if k in mine.params},
                   grads={k: v for k, v in run.grads.items() if k in mine.grads})
