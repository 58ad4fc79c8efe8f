"""Helpers for course staff's own pytest suites.

::

    from harness.testing import assert_gradients_match

    def test_my_backprop():
        assert_gradients_match(my_backward, "scenarios/keys/audits/xor-relu-sigmoid.toml")
"""
from __future__ import annotations

from harness.answers.audit import ATOL, RTOL, AuditResult, Backward, audit_gradients, audit_text
from harness.spec.catalogue import resolve
from harness.spec.scenario import Scenario


def assert_gradients_match(fn: Backward, scenario: Scenario | str, *, rtol: float = RTOL,
                           atol: float = ATOL) -> AuditResult:
    """Fail (``AssertionError`` with the audit table) unless ``fn`` returns the gradient of every parameter.

    ``fn(params, X, y)`` gets the scenario's initial parameters (reference layout) and its
    first batch; see ``harness.answers.audit`` for the comparison and the tolerance.
    """
    resolved = resolve(scenario) if isinstance(scenario, str) else scenario
    result = audit_gradients(fn, resolved, function_name=getattr(fn, "__name__", "backward"), rtol=rtol, atol=atol)
    if not result.ok:
        raise AssertionError(audit_text(result, rtol=rtol, atol=atol))
    return result
