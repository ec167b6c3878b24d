"""Step 1 of IRNet: a multi-label classifier on a Detectron2 ResNet backbone (output stride 16) and
its class activation maps (CAMs), computed with multiple scales and horizontal flips.

Shape shorthand: N images; C classes (``NUM_CLASSES``); K classes present in an image;
(H, W) image size; (h4, w4) its stride-4 grid ((H - 1) // 4 + 1, ...); (h16, w16) the stride-16
grid.
"""

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import nn

from ...utils.config_registry import check_d2_instseg_config
from ..preprocess import preprocess_image
from .relations import strided_size


@META_ARCH_REGISTRY.register()
class IRNetCAM(nn.Module):
    """Classifier whose 1x1 conv (no bias) after global average pooling also gives the CAMs:
    ``CAM_c = ReLU(w_c . f)`` on the ``IN_FEATURE`` map.

    Training input: dicts with ``image`` (C, H, W) and ``image_labels`` (contiguous class ids);
    returns ``{"loss_cls"}`` (multi-label soft-margin loss).
    Inference: ``[{"cam": (C, h16, w16)}]``.
    """

    # the classifier's modules (their learning rate is MODEL.IRNET.CAM.HEAD_LR_MULT x)
    HEAD_MODULES = ("classifier",)

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        in_feature: str,
        num_classes: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
    ):
        super().__init__()
        self.backbone = backbone
        self.in_feature = in_feature
        self.num_classes = num_classes
        channels = backbone.output_shape()[in_feature].channels
        self.classifier = nn.Conv2d(channels, num_classes, 1, bias=False)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        check_d2_instseg_config(cfg)
        return {
            "backbone": build_backbone(cfg),
            "in_feature": cfg.MODEL.IRNET.CAM.IN_FEATURE,
            "num_classes": cfg.MODEL.IRNET.NUM_CLASSES,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        divisibility = self.backbone.size_divisibility
        return preprocess_image(batched_inputs, self.pixel_mean, self.pixel_std, divisibility)

    def forward(self, batched_inputs: List[Dict]):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)[self.in_feature]
        if self.training:
            logits = self._pooled_logits(features)
            targets = self._targets(batched_inputs)
            return {"loss_cls": F.multilabel_soft_margin_loss(logits, targets)}
        cams = self._cams(features)
        return [
            {"cam": cam[:, : (h - 1) // 16 + 1, : (w - 1) // 16 + 1]}
            for cam, (h, w) in zip(cams, images.image_sizes)
        ]

    def _targets(self, batched_inputs: List[Dict]) -> torch.Tensor:
        """(N, C) multi-hot image labels."""
        targets = torch.zeros(len(batched_inputs), self.num_classes, device=self.pixel_mean.device)
        for i, x in enumerate(batched_inputs):
            targets[i, list(x["image_labels"])] = 1.0
        return targets

    def _pooled_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D, h16, w16) features -> (N, C) logits of their global average."""
        return self.classifier(features.mean(dim=(2, 3), keepdim=True)).flatten(1)

    def _cams(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D, h16, w16) features -> (N, C, h16, w16) CAMs, ReLU(w_c . f)."""
        return F.relu(self.classifier(features))

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) unnormalised images -> (N, D, h16, w16) ``IN_FEATURE`` map (no padding)."""
        return self.backbone((images - self.pixel_mean) / self.pixel_std)[self.in_feature]

    def cam_maps(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) unnormalised images -> (N, C, h16, w16) ReLU'd CAMs (no padding)."""
        return self._cams(self._features(images))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) unnormalised images -> (N, C) image-level logits (> 0: class present)."""
        return self._pooled_logits(self._features(images))


@torch.no_grad()
def multiscale_cams(
    model: IRNetCAM, image: torch.Tensor, classes: Sequence[int], scales: Sequence[float]
) -> Dict[str, torch.Tensor]:
    """IRNet's CAM inference for one image.

    image: (3, H, W) float, unnormalised, on the model's device; ``classes``: the K contiguous class
    ids present (image-level labels). For every scale the image and its flip are classified; the
    flipped CAM is flipped back and added. Returns
    ``cam`` (K, h4, w4): sum over scales resized to the stride-4 grid, and
    ``high_res`` (K, H, W): each scale resized to the stride-16-aligned size, summed and cropped;
    both restricted to ``classes`` and divided by their per-class max (+1e-5).
    """
    height, width = image.shape[-2:]
    size4 = strided_size(height, width, 4)
    size16_up = tuple(16 * s for s in strided_size(height, width, 16))
    keys = torch.as_tensor(list(classes), dtype=torch.long, device=image.device)
    cam = image.new_zeros((len(keys),) + size4)
    high_res = image.new_zeros((len(keys),) + size16_up)
    for scale in scales if len(keys) else ():
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        x = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)
        maps = model.cam_maps(torch.cat([x, x.flip(-1)]))[:, keys]
        maps = (maps[0] + maps[1].flip(-1))[None]
        cam += F.interpolate(maps, size=size4, mode="bilinear", align_corners=False)[0]
        high_res += F.interpolate(maps, size=size16_up, mode="bilinear", align_corners=False)[0]
    high_res = high_res[:, :height, :width]

    def normalise(x: torch.Tensor) -> torch.Tensor:
        return x / (x.flatten(1).max(dim=1)[0].view(-1, 1, 1) + 1e-5) if len(x) else x

    return {"keys": keys, "cam": normalise(cam), "high_res": normalise(high_res)}


def cam_semantic_prediction(
    high_res: torch.Tensor, classes: Sequence[int], bg_thresh: float
) -> torch.Tensor:
    """(K, H, W) normalised CAMs -> (H, W) labels (0 = background with constant score ``bg_thresh``,
    c + 1 = class c), as in the CAM evaluation of the paper."""
    keys = torch.tensor([0] + [c + 1 for c in classes], device=high_res.device)
    bg = high_res.new_full((1, *high_res.shape[1:]), bg_thresh)
    return keys[torch.cat([bg, high_res]).argmax(dim=0)]
