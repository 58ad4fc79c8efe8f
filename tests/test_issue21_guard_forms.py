"""The seed-12 question whether a probability torch keeps subnormal (where TensorFlow flushes it to 0)
parts torch from the measurement of ``autograd at a clamped log(0)``: torch's autograd of the "torch"
guard is the quotient form (``guard_at_zero.QUOTIENT``) at subnormal probabilities too, in float32
and float64, element for element: 0 where the clamp binds at p > 0 (0 / p), nan only at p = 0, and
-inf where the clamp passes a subnormal p whose -y / p overflows (float32 p = 1e-40: log p = -92.1),
as the reference's guard gives there."""
from __future__ import annotations

import numpy as np
import pytest

from harness.judge.causes.guard_at_zero import FORMS, QUOTIENT, autograd_gradient
from reference.losses import get_loss
from tests.on_first_use import torch

CASES = {  # p: subnormal, clamp passes; the smallest subnormal; exactly 0; subnormal, clamp binds; inside
    "float32": [[1e-40, 1e-45, 0.0, 2e-44, 0.5]],
    "float64": [[1e-310, 5e-324, 0.0, 1e-200, 0.5]],
}


@pytest.mark.xdist_group(name="torch-in-process")  # torch in the pytest process (tests/conftest.py, _group)
@pytest.mark.parametrize("dtype", sorted(CASES))
def test_torch_s_autograd_is_the_quotient_form_at_subnormal_probabilities(dtype: str) -> None:
    p_np = np.array(CASES[dtype], dtype=dtype)
    y = np.ones_like(p_np)
    p = torch.tensor(p_np, requires_grad=True)
    (-torch.mean(torch.sum(torch.tensor(y) * torch.clamp(torch.log(p), min=-100.0), dim=-1))).backward()
    with np.errstate(all="ignore"):
        rule = autograd_gradient(y, p_np, FORMS[QUOTIENT])
        guard = get_loss("categorical_crossentropy").gradient(y, p_np, clip="torch")
    np.testing.assert_array_equal(p.grad.numpy(), rule)
    assert np.flatnonzero(np.isnan(rule)).tolist() == [2]  # nan at p = 0 alone
    # away from p = 0 the rule is the reference guard's (-inf included): a subnormal p parts nothing
    keep = ~np.isnan(rule)
    np.testing.assert_array_equal(rule[keep], guard[keep])
