"""SOLVER.CLIP_GRADIENTS in multi-tensor ops: the per-parameter clipping of Detectron2, on
hand-computed gradients."""

import math

import pytest
import torch
from detectron2.config import get_cfg

from d2_instseg.engine.grad_clip import clip_grad_norm_per_parameter_, with_gradient_clipping


def _param(grad):
    p = torch.nn.Parameter(torch.zeros(len(grad)))
    p.grad = torch.tensor(grad, dtype=torch.float32)
    return p


def test_each_gradient_is_scaled_to_its_own_norm():
    big, small, none = _param([6.0, 8.0]), _param([0.3, 0.4]), torch.nn.Parameter(torch.zeros(2))
    clip_grad_norm_per_parameter_([big, small, none], max_norm=5.0)
    # ||(6, 8)|| = 10 -> scale 5 / (10 + 1e-6); ||(0.3, 0.4)|| = 0.5 < 5: unchanged
    assert torch.allclose(big.grad, torch.tensor([3.0, 4.0]), atol=1e-5)
    assert torch.equal(small.grad, torch.tensor([0.3, 0.4]))
    assert none.grad is None


def test_max_norm_type():
    p = _param([-3.0, 1.0])
    clip_grad_norm_per_parameter_([p], max_norm=2.0, norm_type=math.inf)  # scale 2 / 3
    assert torch.allclose(p.grad, torch.tensor([-2.0, 2.0 / 3.0]), atol=1e-5)


def _cfg(clip_type, value):
    cfg = get_cfg()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = clip_type
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = value
    return cfg


@pytest.mark.parametrize(
    "clip_type, grad, expected",
    [("norm", [6.0, 8.0], [-3.0, -4.0]), ("value", [6.0, -8.0], [-5.0, 5.0])],
)
def test_optimizer_steps_with_the_clipped_gradient(clip_type, grad, expected):
    """SGD at lr 1 without momentum moves each parameter by minus its clipped gradient."""
    p = _param(grad)
    sgd = with_gradient_clipping(_cfg(clip_type, 5.0), torch.optim.SGD)([p], lr=1.0)
    sgd.step()
    assert torch.allclose(p.detach(), torch.tensor(expected), atol=1e-5)


def test_disabled_or_unknown_clipping():
    cfg = get_cfg()
    assert with_gradient_clipping(cfg, torch.optim.Adam) is torch.optim.Adam
    with pytest.raises(ValueError, match="CLIP_TYPE"):
        with_gradient_clipping(_cfg("full_model", 1.0), torch.optim.Adam)
