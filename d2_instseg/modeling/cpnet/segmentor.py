"""CPNetSegmentor: Detectron2's SemanticSegmentor for heads tied to one input size.

CPNet's prior layer has N = h * w output channels, so the network only accepts inputs of the
training crop size (INPUT.CROP.SIZE). Training pads each image (and its label, with the ignore
value) up to the crop; inference covers an image of any size with crop-sized windows ("slide") or
resizes it to the crop ("resize"), optionally at several scales and flipped, and returns softmax
scores at the image's original resolution ("height", "width"), as SemSegEvaluator expects.

Shape shorthand:
    K: classes; H, W: network input image size; (ch, cw): crop size; (sh, sw): sliding stride.
"""

import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, SemanticSegmentor

from ...utils.config_registry import check_d2_instseg_config
from ..preprocess import normalize_images
from .inference import cpnet_inference


@META_ARCH_REGISTRY.register()
class CPNetSegmentor(SemanticSegmentor):
    """SemanticSegmentor with fixed-size training inputs and sliding-window / resize inference,
    multi-scale and flip testing. Outputs ``{"sem_seg": (K, height, width) softmax scores}``."""

    @configurable
    def __init__(
        self,
        *,
        crop_size: Tuple[int, int],
        test_mode: str,
        slide_stride: Tuple[int, int],
        test_scales: Tuple[float, ...],
        test_flip: bool,
        **kwargs,
    ):
        """
        Args:
            crop_size: (ch, cw), the only input size the head accepts.
            test_mode: "slide" or "resize".
            slide_stride: (sh, sw) between windows in "slide" mode.
            test_scales: scales of the image at test time; scores are averaged.
            test_flip: also average the prediction of the horizontally flipped image.
            kwargs: arguments of SemanticSegmentor (backbone, sem_seg_head, pixel_mean/std).
        """
        super().__init__(**kwargs)
        self.crop_size = tuple(crop_size)
        self.test_mode = test_mode
        self.slide_stride = tuple(slide_stride)
        self.test_scales = tuple(test_scales)
        self.test_flip = test_flip

    @classmethod
    def from_config(cls, cfg):
        check_d2_instseg_config(cfg)
        ret = super().from_config(cfg)
        crop = tuple(int(s) for s in cfg.INPUT.CROP.SIZE)
        t = cfg.MODEL.CPNET.TEST
        stride = tuple(int(s) for s in t.SLIDE_STRIDE)
        feature = ret["backbone"].output_shape()[cfg.MODEL.CPNET.IN_FEATURE]
        expected = [math.ceil(c / feature.stride) for c in crop]
        if list(cfg.MODEL.CPNET.PRIOR_SIZE) != expected:
            raise ValueError(
                f"MODEL.CPNET.PRIOR_SIZE={list(cfg.MODEL.CPNET.PRIOR_SIZE)} does not match "
                f"INPUT.CROP.SIZE={list(crop)} at the {cfg.MODEL.CPNET.IN_FEATURE} stride "
                f"{feature.stride}: expected {expected}"
            )
        ret.update(
            crop_size=crop,
            test_mode=t.MODE,
            slide_stride=stride,
            test_scales=tuple(t.SCALES),
            test_flip=t.FLIP,
        )
        return ret

    # The inference path after the network, shared with exported models (d2_instseg.export).
    inference = staticmethod(cpnet_inference)

    def forward(self, batched_inputs):
        """Training: dict of losses. Inference: ``[{"sem_seg": (K, height, width)}]``."""
        if self.training:
            return self.forward_training(batched_inputs)
        return self.inference(self.inference_network, batched_inputs, **self.inference_params())

    def inference_params(self) -> Dict:
        """The keyword arguments of :func:`cpnet_inference` besides the network and inputs."""
        return {
            "pixel_mean": self.pixel_mean,
            "pixel_std": self.pixel_std,
            "crop_size": self.crop_size,
            "test_mode": self.test_mode,
            "slide_stride": self.slide_stride,
            "test_scales": self.test_scales,
            "test_flip": self.test_flip,
        }

    def inference_network(self, crops: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(B, 3, ch, cw) normalised crops -> "logits" (B, K, ch, cw) of the head."""
        logits, _ = self.sem_seg_head(self.backbone(crops))
        return {"logits": logits[..., : crops.shape[-2], : crops.shape[-1]]}

    def forward_training(self, batched_inputs):
        ch, cw = self.crop_size
        images, targets = [], []
        for x, image in zip(
            batched_inputs, normalize_images(batched_inputs, self.pixel_mean, self.pixel_std)
        ):
            h, w = image.shape[-2:]
            if h > ch or w > cw:
                raise ValueError(
                    f"CPNet training image of size {(h, w)} exceeds INPUT.CROP.SIZE {(ch, cw)}: "
                    "use INPUT.DATASET_MAPPER_NAME 'SemSegScaleCropMapper' (random crop + pad)"
                )
            # Pad to the crop: zero = the mean colour after normalisation; labels get ignore.
            images.append(F.pad(image, (0, cw - w, 0, ch - h), value=0.0))
            target = x["sem_seg"].to(self.device)
            ignore = self.sem_seg_head.ignore_value
            targets.append(F.pad(target, (0, cw - w, 0, ch - h), value=ignore))
        features = self.backbone(torch.stack(images))
        _, losses = self.sem_seg_head(features, torch.stack(targets))
        return losses
