"""The kinds called at evaluation points — ``forward``, ``loss``, ``step`` — and ``backward`` (the
gradient audit of ``harness.answers.audit``), each a ``KindAudit`` (``harness.answers.kinds``)."""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import replace
from typing import Callable

import numpy as np

from harness.answers.audit import (
    AuditResult,
    Independent,
    ParamAudit,
    check_trains,
    independent,
    initial_batch,
    judge_gradients,
)
from harness.answers.kind_base import (
    SUBMISSION,
    KindAudit,
    Outcome,
    OutcomeAudit,
    Shaped,
    Unreadable,
    as_array,
    as_params,
    differs,
    names_of,
    shaped,
)
from harness.answers.mistakes import (
    ForwardMistake,
    LossMistake,
    Step,
    UpdateMistake,
    apply,
    forward_mistakes,
    gradients,
    loss_mistakes,
    plain_sgd,
    update_mistakes,
)
from harness.answers.returned import Returned, read_returned
from harness.answers.sandbox import Argument, Called
from harness.errors import BadInput
from harness.run.adapters import FRAMEWORKS, REFERENCE, adapter
from harness.spec.scenario import Scenario

POINTS = 4  # evaluation points of forward, loss and step


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
        return judge_gradients(self.scenario, function, returned, self.expected, rtol=self.rtol, atol=self.atol)


# --- evaluation points: forward, loss, step -------------------------------------------------


class PointAudit(OutcomeAudit):
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

    @abstractmethod
    def compute(self, source: str, k: int) -> dict[str, np.ndarray]:
        ...

    @abstractmethod
    def read(self, value: object) -> dict[str, np.ndarray]:
        """One call's return value by quantity (raises ``Unreadable``)."""
        ...

    def mistakes(self) -> list[tuple[str, Callable[[int], dict[str, np.ndarray]], str]]:
        """(name, the replay's quantities at point k, what else gives the same values)."""
        return []

    @abstractmethod
    def stage(self, quantity: str) -> str:
        ...

    def outcome(self, values: list[object]) -> Outcome:
        submitted = [self.read(v) for v in values]
        reference = self.expected[REFERENCE]
        quantities: list[ParamAudit] = []
        first: tuple[int, str] | None = None
        for name, label in self.quantity_names():
            audit = ParamAudit(name=name, label=label, status="ok")
            quantities.append(audit)
            got = [s.get(name) for s in submitted]
            if any(g is None for g in got):
                audit.status, audit.message = "missing", f"no value returned for {name} (or {label})"
                continue
            reshaped = [shaped(g, reference[k][name]) for k, g in enumerate(got)]
            if any(isinstance(s, str) for s in reshaped):
                audit.status = "wrong shape"
                audit.message = next(s for s in reshaped if isinstance(s, str))
                continue
            arrays = [s for s in reshaped if isinstance(s, np.ndarray)]
            if not all(np.all(np.isfinite(a)) for a in arrays):
                audit.status = "not finite"
                continue
            audit.submitted = arrays[0]
            audit.diffs = {source: max(float(np.max(np.abs(a - self.expected[source][k][name])))
                                       for k, a in enumerate(arrays)) for source in self.expected}
            bad = [k for k, a in enumerate(arrays) if differs(a, reference[k][name], self.tolerance)]
            if bad:
                audit.status = "wrong"
                scale = max(float(np.max(np.abs(reference[k][name]))) for k in range(len(arrays)))
                audit.max_rel = audit.diffs[REFERENCE] / scale if scale else None
                if first is None or bad[0] < first[0]:
                    first = (bad[0], name)
        out = Outcome(quantities=quantities, compared=self.describe_points())
        if all(q.ok for q in quantities):
            return out
        arrays_by_point = [{q.name: shaped(submitted[k][q.name], reference[k][q.name]) for q in quantities
                            if q.status in ("ok", "wrong")} for k in range(len(submitted))]
        if first is not None:
            out.step, out.stage = first[0], self.stage(first[1])
            out.right = [f"point {k}: every quantity" for k in range(first[0])]
            out.suspect = self.suspect(out.step, out.stage)
        out.cause, out.evidence = self.cause(arrays_by_point)
        return out

    def describe_points(self) -> str:
        n = len(self.points)
        return (f"{n} evaluation point{'s' if n > 1 else ''}: the reference's parameters before step"
                f"{'s 0-' + str(n - 1) if n > 1 else ' 0'}")

    def suspect(self, k: int, stage: str) -> str:
        """The project's majority rule over the submission and the implementations at point ``k``."""
        others = [s for s in self.expected if s != REFERENCE]
        agreeing = [s for s in others if not any(differs(self.expected[s][j][q], self.expected[REFERENCE][j][q],
                                                          self.tolerance)
                                                 for j in range(len(self.points)) for q in self.expected[s][j])]
        implementations = [REFERENCE, *agreeing]
        if len(implementations) < 2 or len(implementations) < len(self.expected):
            return (f"no majority: only {', '.join(self.expected)} computed it, and they do not all agree"
                    if len(implementations) < len(self.expected) else
                    f"no majority: only the submission and {REFERENCE} computed it")
        names = names_of(implementations)
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
                    if value.shape != np.shape(expected[q]) or differs(value, expected[q], self.tolerance):
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
        return {"output": as_array(value, "the output")}

    def stage(self, quantity: str) -> str:  # noqa: ARG002 - PointAudit.stage's signature: one stage for any quantity
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
        array = as_array(value, "the loss")
        if array.size != 1:
            raise Unreadable(f"the function returned {array.size} values (shape {array.shape}), not one loss")
        return {"loss": array.reshape(())}

    def stage(self, quantity: str) -> str:  # noqa: ARG002 - PointAudit.stage's signature: one stage for any quantity
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
        return as_params(value, self.labels, "the new parameters")

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
