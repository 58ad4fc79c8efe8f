"""``--kind train``: a student's whole training loop as one more implementation, compared step by
step with numpy, Keras and torch (``harness.answers.kinds`` says what a ``train`` returns)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from harness.answers.audit import ParamAudit, check_trains
from harness.answers.kind_base import SUBMISSION, Outcome, OutcomeAudit, Unreadable, as_array, as_number, differs
from harness.answers.mistakes import Params, Step, UpdateMistake, apply, gradients, plain_sgd, update_mistakes
from harness.answers.returned import read_returned
from harness.answers.sandbox import Argument
from harness.answers.value_transfer import type_name
from harness.judge.compare import Comparison, compare
from harness.judge.localisation import Localisation, StageDiff
from harness.judge.result import ScenarioResult, reference_label
from harness.judge.suspects import suspects
from harness.pipeline import RUNS, run_scenario
from harness.run.adapters import FRAMEWORKS, REFERENCE
from harness.run.plan import TrainingPlan
from harness.run.trajectory import Trajectory, trace_stages
from harness.spec.scenario import Scenario, rows_per_batch
from harness.spec.tolerance import Tolerance

# --- the whole loop: train ---------------------------------------------------------------


class TrainAudit(OutcomeAudit):
    kind = "train"
    unit = "step"

    def __init__(self, scenario: Scenario) -> None:
        check_trains(scenario)
        super().__init__(scenario)
        training = scenario.training_spec
        self.tolerance = scenario.tolerances["float64"]
        self.lr = training.optimizer.learning_rate
        self.batch_size = rows_per_batch(training, self.plan.X.shape[0])
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
        mine = history.trajectory(self.plan)
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
                self._final(audit, history, mine)
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

    def _final(self, audit: ParamAudit, history: History, mine: Trajectory) -> None:
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
        if run is None or run.steps != mine.steps or differs(value, run.final_params[audit.name], self.tolerance):
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
        if differs(mine.losses[step], loss, self.tolerance):
            return "loss", agreeing
        agreeing.append(f"{at}: the loss")
        names = [s.split(" ", 1)[1] for s in trace_stages(self.scenario) if s.startswith("gradient ")]
        for name in names if history.grads else []:
            if name in mine.grads and differs(mine.grads[name][step], grads[name], self.tolerance):
                return f"gradient {name}", agreeing
            if name in mine.grads:
                agreeing.append(f"{at}: the gradient of {self.labels[name]} ({name})")
        expected = apply(None, Step(self.lr, grads, X.shape[0], grads, grads), before)[1] \
            if plain_sgd(self.scenario) else {}
        for name in self.labels:
            if name in mine.params and (name not in expected or differs(mine.params[name][step], expected[name],
                                                                          self.tolerance)):
                return f"updated {name}", agreeing
        return "updated parameters", agreeing

    def _suspect(self, mine: Trajectory, comparisons: dict[str, Comparison], step: int, stage: str) -> str:
        """The project's majority rule (``harness.judge.suspects.suspects``) over the implementations
        and the submission, the submission's pairs localised at ``stage``."""
        if self.result is None:
            return ""
        result = replace(self.result, frameworks=(*self.result.frameworks, SUBMISSION),
                         runs={**self.result.runs, (SUBMISSION, "float64"): mine},
                         comparisons=[*self.result.comparisons, *comparisons.values()])
        where = Localisation(step, [StageDiff(stage, max_abs=0.0, max_rel=0.0, rate=float("inf"),
                                              beyond_tolerance=True)])
        return "; ".join(s.describe() for s in suspects(result, "float64", runs=RUNS,
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
                not differs(history.final[n], replayed.final_params[n], self.tolerance) for n in history.final)
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
            if differs(mine.losses[t], loss, loose) or any(
                    differs(mine.params[k][t], params[k], loose) for k in mine.params):
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

    def trajectory(self, plan: TrainingPlan) -> Trajectory:
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
        history = History(losses=[as_number(r["loss"], f"step {t}'s loss") for t, r in enumerate(value)])
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
        array = as_array(losses, "the losses")
        return History(losses=[float(v) for v in array.ravel()], final=dict(returned.arrays), final_only=True,
                       unreadable=dict(returned.unreadable))
    raise Unreadable(f"the function returned a {type_name(value)}: {form}")


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
