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
from typing import List, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, SemanticSegmentor
from detectron2.modeling.postprocessing import sem_seg_postprocess

from ...utils.config_registry import check_d2_instseg_config
from ..preprocess import normalize_images


def window_starts(length: int, window: int, stride: int) -> List[int]:
    """Start offsets of windows of ``window`` every ``stride`` covering ``[0, length)``; the last
    window is shifted back to end at ``length`` (one window at 0 when ``length <= window``)."""
    count = max(math.ceil((length - window) / stride), 0) + 1
    return [min(i * stride, max(length - window, 0)) for i in range(count)]


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

    def forward(self, batched_inputs):
        """Training: dict of losses. Inference: ``[{"sem_seg": (K, height, width)}]``."""
        if self.training:
            return self.forward_training(batched_inputs)
        return [{"sem_seg": self.inference(x)} for x in batched_inputs]

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

    def inference(self, batched_input) -> torch.Tensor:
        """One image -> (K, height, width) scores averaged over scales and flips."""
        (image,) = normalize_images([batched_input], self.pixel_mean, self.pixel_std)
        size = tuple(image.shape[-2:])
        scores, count = 0.0, 0
        for scale in self.test_scales:
            scaled = image
            if scale != 1.0:
                scaled_size = tuple(max(round(s * scale), 1) for s in size)
                scaled = F.interpolate(
                    image[None], scaled_size, mode="bilinear", align_corners=False
                )[0]
            for flip in (False, True) if self.test_flip else (False,):
                logits = self.predict_logits(scaled.flip(-1) if flip else scaled)
                logits = logits.flip(-1) if flip else logits
                logits = F.interpolate(logits[None], size, mode="bilinear", align_corners=False)
                scores = scores + logits[0].softmax(0)
                count += 1
        height = batched_input.get("height", size[0])
        width = batched_input.get("width", size[1])
        return sem_seg_postprocess(scores / count, size, height, width)

    def predict_logits(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) normalised image of any size -> (K, H, W) logits."""
        if self.test_mode == "resize":
            resized = F.interpolate(
                image[None], self.crop_size, mode="bilinear", align_corners=False
            )
            logits = self.run_crops(resized)
            return F.interpolate(logits, image.shape[-2:], mode="bilinear", align_corners=False)[0]
        return self.slide(image)

    def slide(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) -> (K, H, W) logits averaged over crop-sized windows (the image is zero-padded
        up to the crop when smaller)."""
        (ch, cw), (sh, sw) = self.crop_size, self.slide_stride
        h, w = image.shape[-2:]
        padded = F.pad(image, (0, max(cw - w, 0), 0, max(ch - h, 0)), value=0.0)
        ph, pw = padded.shape[-2:]
        boxes = [(y, x) for y in window_starts(ph, ch, sh) for x in window_starts(pw, cw, sw)]
        logits = self.run_crops(torch.stack([padded[:, y : y + ch, x : x + cw] for y, x in boxes]))
        total = logits.new_zeros((logits.shape[1], ph, pw))
        count = logits.new_zeros((1, ph, pw))
        for (y, x), window_logits in zip(boxes, logits):
            total[:, y : y + ch, x : x + cw] += window_logits
            count[:, y : y + ch, x : x + cw] += 1
        return (total / count)[:, :h, :w]

    def run_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, ch, cw) -> (B, K, ch, cw) logits of the head."""
        logits, _ = self.sem_seg_head(self.backbone(crops))
        return logits[..., : crops.shape[-2], : crops.shape[-1]]
