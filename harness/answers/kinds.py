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
agreement rule (``harness.spec.tolerance``): ``train`` runs step by step with
``harness.judge.compare.compare`` and the scenario's float64 tolerance, the other kinds point by
point with the audit's (rtol 1e-7, atol 1e-9). What is wrong is localised (first step or point,
stage in ``harness.run.trajectory.trace_stages``' names), its suspect named by the project's
majority rule (``harness.judge.suspects.suspects`` for ``train``), and its cause named only
when a replay with that mistake (``harness.answers.mistakes``) reproduces what the submission
computed.

``kind_base`` holds what every kind shares (``KindAudit``), ``point_audits`` the kinds called at
evaluation points and ``backward``, ``loop_audit`` the training loop.
"""
from __future__ import annotations

from typing import Callable

from harness.answers.audit import ATOL, RTOL
from harness.answers.kind_base import KindAudit
from harness.answers.loop_audit import TrainAudit
from harness.answers.point_audits import BackwardAudit, ForwardAudit, LossAudit, StepAudit
from harness.run.budget import check_budget
from harness.spec.scenario import Scenario

AUDIT_KINDS = ("forward", "loss", "backward", "step", "train")
INTERFACES = {
    "forward": "forward(params, X) -> outputs",
    "loss": "loss(params, X, y) -> float",
    "backward": "backward(params, X, y) -> gradients",
    "step": "step(params, X, y, lr) -> new params",
    "train": "train(params, X, y, lr, epochs, batch_size) -> history, or (params, losses)",
}


def kind_audit(kind: str, scenario: Scenario, *, rtol: float = RTOL, atol: float = ATOL) -> KindAudit:
    """The audit of ``kind`` on ``scenario``; a scenario the kind cannot audit is ``BadInput``.
    ``rtol``, ``atol``: the gradient audit's agreement rule (``backward``)."""
    check_budget(scenario, runs_per_dtype=1, dtypes=("float64",))
    if kind == "backward":
        return BackwardAudit(scenario, rtol=rtol, atol=atol)
    audits: dict[str, Callable[[Scenario], KindAudit]] = {"forward": ForwardAudit, "loss": LossAudit,
                                                          "step": StepAudit, "train": TrainAudit}
    return audits[kind](scenario)
