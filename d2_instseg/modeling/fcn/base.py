"""Common forward / loss of the baseline semantic heads (FCN, UNet)."""

from typing import Dict, Optional

import torch
from torch import nn

from ...layers.cross_entropy import cross_entropy_ignore
from ...layers.resize import resize_and_crop


class DenseHead(nn.Module):
    """A SEM_SEG head whose ``layers(features)`` return logits at (or just above) the input size.

    ``forward(features, targets)`` follows Detectron2's SemSegFPNHead: ``(logits, {})`` at
    inference (logits (B, K, >=H, >=W), cropped by ``sem_seg_postprocess``) and
    ``(None, {"loss_sem_seg": loss_weight * CE})`` in training, where targets are (B, H, W) and CE
    is 0, not NaN, when every pixel is ignored.
    Subclasses set ``ignore_value``, ``loss_weight`` and implement ``layers``.
    """

    ignore_value: int
    loss_weight: float

    def layers(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None):
        logits = self.layers(features)
        if not self.training:
            return logits, {}
        ce = cross_entropy_ignore(
            resize_and_crop(logits, targets.shape[-2:], factor=1), targets, self.ignore_value
        )
        return None, {"loss_sem_seg": self.loss_weight * ce}
