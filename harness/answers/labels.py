"""The labs' names for a network's parameters: ``w`` and ``b`` for a one-layer model, ``w1, b1,
w2, b2, ...`` for deeper ones, beside the reference's ``layers.<i>.kernel`` and ``layers.<i>.bias``.

Answer keys name parameters by label; an audited function may key its gradients by either name.
"""
from __future__ import annotations

from collections.abc import Sequence

from harness.spec.scenario import LayerSpec, Scenario
from reference.network import bias_name, kernel_name


def param_labels(layers: Sequence[LayerSpec]) -> dict[str, str]:
    """Label -> reference name, in parameter order (each layer's kernel, then its bias if it has one)."""
    labels = {}
    for i, layer in enumerate(layers):
        suffix = "" if len(layers) == 1 else str(i + 1)
        labels[f"w{suffix}"] = kernel_name(i)
        if layer.use_bias:
            labels[f"b{suffix}"] = bias_name(i)
    return labels


def labels_of(scenario: Scenario) -> dict[str, str]:
    """Reference name -> label of every parameter of ``scenario``, in parameter order (``param_labels``
    the other way round)."""
    return {name: label for label, name in param_labels(scenario.layers).items()}
