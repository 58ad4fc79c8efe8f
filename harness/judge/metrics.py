"""Classification accuracy of a model's predictions, and of a trained run on held-out splits.

The predictions come from the NumPy reference's forward pass, so the same
parameters give the same accuracy whichever framework trained them.
"""
from __future__ import annotations

import numpy as np

from harness.run.adapters.numpy_reference import ADAPTER as REFERENCE_ADAPTER
from harness.spec.scenario import Scenario

ACCURACY_LOSSES = ("binary_crossentropy", "categorical_crossentropy")


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, *, loss: str) -> float:
    """The fraction of rows classified right, in [0, 1].

    ``binary_crossentropy``: one output column, class 1 when ``p > 0.5``
    (the 004 homework's ``output > 0.5``), compared with the 0/1 label.
    ``categorical_crossentropy``: ``argmax`` of the prediction against
    ``argmax`` of the one-hot target.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 2 or y_true.shape[0] == 0:
        raise ValueError(f"accuracy: expected y_true and y_pred of the same shape (n >= 1, outputs); "
                         f"received {y_true.shape} and {y_pred.shape}")
    if loss == "binary_crossentropy":
        if y_true.shape[1] != 1:
            raise ValueError(f"accuracy: binary cross-entropy expects one output column; received {y_true.shape}")
        hits = (y_pred[:, 0] > 0.5) == (y_true[:, 0] > 0.5)
    elif loss == "categorical_crossentropy":
        hits = np.argmax(y_pred, axis=1) == np.argmax(y_true, axis=1)
    else:
        raise ValueError(f"accuracy: expected a loss in {list(ACCURACY_LOSSES)}; received {loss!r}")
    return float(np.mean(hits))


def evaluate(
    scenario: Scenario, params: dict[str, np.ndarray], splits: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """Accuracy of the model with ``params`` on each split ``name -> (X, y)``; the scenario's
    training loss says how predictions become classes."""
    if scenario.training is None:
        raise ValueError(f"evaluate: {scenario.name} is forward-only: no training loss to score accuracy by")
    reference, loss = REFERENCE_ADAPTER, scenario.training.loss
    return {name: accuracy(y, reference.forward(scenario, params, X)[-1], loss=loss) for name, (X, y) in splits.items()}
