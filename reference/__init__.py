"""From-scratch NumPy reference implementation of the labs' neural-network maths.

One small module per concept, forward rule and derivative side by side:
``activations``, ``losses``, ``layers``, ``optimizers``, ``network``.
Only NumPy is imported here. Everything runs in the dtype of its inputs
(float64 by default, float32 when the inputs are float32).
"""
