"""``CenterMaskPoint``: CenterMask (Wang et al., CVPR 2020, point representation) as a Detectron2
meta-architecture, shaped like Detectron2's dense detectors: ``preprocess_image`` -> backbone
(stride-4 feature) -> five heads -> ``forward_training`` (the paper's losses); at inference
:func:`centermask_inference` runs :meth:`CenterMaskPoint.inference_network` (backbone, dense heads,
top-K peaks, point heads at the peaks: the part an export traces) and decodes its outputs.

Shape shorthand: N images, C classes, H x W feature map (stride R), K objects, S local shape side.
"""

from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList, Instances
from torch import nn

from ...layers.centernet import centernet_focal_loss
from ...utils.config_checks import check_backbone_features
from ...utils.config_registry import check_d2_instseg_config
from ..preprocess import preprocess_image
from .assemble import assemble_masks, saliency_channel
from .head import CenterMaskHead
from .inference import centermask_inference
from .loss import mask_bce_loss, reg_l1_loss, saliency_bce_loss
from .postprocess import topk_peaks
from .targets import centermask_targets, saliency_targets

__all__ = ["CenterMaskPoint"]


@META_ARCH_REGISTRY.register()
class CenterMaskPoint(nn.Module):
    """CenterMask: heatmap, offset and size heads (CenterNet) plus a local shape (S x S at each
    center) and a global saliency map, assembled as M_k = sigmoid(L_k) * sigmoid(G_k) in each box.

    Training assembles masks on the ground-truth center and size; inference on the predicted ones.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        in_feature: str,
        head: CenterMaskHead,
        num_classes: int,
        pixel_mean: List[float],
        pixel_std: List[float],
        loss_weights: Dict[str, float],
        gaussian_min_overlap: float = 0.7,
        saliency_class_specific: bool = False,
        topk_test: int = 100,
        score_thresh_test: float = 0.05,
        mask_thresh_test: float = 0.4,
    ):
        """
        Args:
            backbone: any Detectron2 backbone with output ``in_feature``.
            in_feature: name of the backbone output the heads read (stride R, usually 4).
            head: the five heads.
            num_classes: C.
            pixel_mean, pixel_std: input normalisation, per channel.
            loss_weights: weights of "loss_heatmap", "loss_offset", "loss_size", "loss_mask",
                "loss_saliency" (the last is computed only when its weight is > 0).
            gaussian_min_overlap: m of the gaussian radius rule.
            saliency_class_specific: objects read the saliency channel of their class (else 0).
            topk_test: K centers per image at test time.
            score_thresh_test: minimum center score at test time.
            mask_thresh_test: threshold of the assembled masks at test time.
        """
        super().__init__()
        self.backbone = backbone
        self.in_feature = in_feature
        self.stride = backbone.output_shape()[in_feature].stride
        self.head = head
        self.num_classes = num_classes
        self.loss_weights = loss_weights
        self.gaussian_min_overlap = gaussian_min_overlap
        self.saliency_class_specific = saliency_class_specific
        self.topk_test = topk_test
        self.score_thresh_test = score_thresh_test
        self.mask_thresh_test = mask_thresh_test
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        check_d2_instseg_config(cfg)
        cm = cfg.MODEL.CENTERMASK
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        backbone_name = f"backbone {cfg.MODEL.BACKBONE.NAME}"
        check_backbone_features("MODEL.CENTERMASK.IN_FEATURE", cm.IN_FEATURE, shapes, backbone_name)
        weights = {
            "loss_heatmap": cm.HEATMAP_LOSS_WEIGHT,
            "loss_offset": cm.OFFSET_LOSS_WEIGHT,
            "loss_size": cm.SIZE_LOSS_WEIGHT,
            "loss_mask": cm.MASK_LOSS_WEIGHT,
            "loss_saliency": cm.SALIENCY_LOSS_WEIGHT,
        }
        return {
            "backbone": backbone,
            "in_feature": cm.IN_FEATURE,
            "head": CenterMaskHead(cfg, shapes[cm.IN_FEATURE]),
            "num_classes": cm.NUM_CLASSES,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "loss_weights": weights,
            "gaussian_min_overlap": cm.GAUSSIAN_MIN_OVERLAP,
            "saliency_class_specific": cm.SALIENCY_CLASS_SPECIFIC,
            "topk_test": cm.TOPK_TEST,
            "score_thresh_test": cm.SCORE_THRESH_TEST,
            "mask_thresh_test": cm.MASK_THRESH_TEST,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        divisibility = self.backbone.size_divisibility
        return preprocess_image(batched_inputs, self.pixel_mean, self.pixel_std, divisibility)

    # The inference path after the network, shared with exported models (d2_instseg.export).
    inference = staticmethod(centermask_inference)

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: Detectron2 model inputs ("image" (3, Hi, Wi) in cfg.INPUT.FORMAT; in
                training "instances" with gt_boxes, gt_classes, gt_masks; optional
                "height"/"width").
        Returns:
            training: dict of weighted losses. Inference: one {"instances": Instances} per image,
            with pred_boxes, scores, pred_classes and pred_masks (bool, at the output size).
        """
        if not self.training:
            return self.inference(self.inference_network, batched_inputs, **self.inference_params())
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)[self.in_feature]
        gt = [x["instances"].to(self.device) for x in batched_inputs]
        return self.forward_training(features, self.head(features), gt)

    def inference_params(self) -> Dict:
        """The keyword arguments of :func:`centermask_inference` besides the network and inputs."""
        return {
            "pixel_mean": self.pixel_mean,
            "pixel_std": self.pixel_std,
            "size_divisibility": self.backbone.size_divisibility,
            "stride": self.stride,
            "score_thresh": self.score_thresh_test,
            "mask_thresh": self.mask_thresh_test,
            "shape_size": self.head.shape_size,
            "saliency_class_specific": self.saliency_class_specific,
        }

    def inference_network(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The network part of inference, traceable with a fixed K = TOPK_TEST: backbone, dense
        heads, the top-K peaks of each image (no score threshold) and the point heads there.

        Args:
            images: (N, 3, H, W) normalised, padded to the backbone's size divisibility.
        Returns:
            "scores", "classes" (N, K), "centers" (N, K, 2) long (x, y), "offset", "size"
            (N, K, 2), "shape" (N, K, S, S) local shape logits (with the shape branch) and
            "saliency" (N, C_s, H / R, W / R) logits (with the saliency branch).
        """
        features = self.backbone(images)[self.in_feature]
        outputs = self.head(features)
        n, c, h, w = outputs["heatmap"].shape
        if self.topk_test > c * h * w:
            raise ValueError(
                f"MODEL.CENTERMASK.TOPK_TEST={self.topk_test} exceeds the {c} x {h} x {w} "
                f"heatmap of a {tuple(images.shape[-2:])} input: use a larger image or fewer peaks"
            )
        peaks = topk_peaks(outputs["heatmap"], self.topk_test)
        k = self.topk_test
        batch_idx = torch.arange(n, device=features.device)[:, None].expand(n, k).reshape(-1)
        points = self.head.at_points(features, batch_idx, peaks["centers"].reshape(n * k, 2))
        peaks.update({name: v.reshape((n, k) + v.shape[1:]) for name, v in points.items()})
        if "saliency" in outputs:
            peaks["saliency"] = outputs["saliency"]
        return peaks

    def forward_training(
        self,
        features: torch.Tensor,
        outputs: Dict[str, torch.Tensor],
        gt_instances: List[Instances],
    ) -> Dict[str, torch.Tensor]:
        """L = lambda_p L_p + lambda_off L_off + lambda_size L_size + lambda_mask L_mask, plus the
        direct saliency BCE when its weight is > 0. The point heads run at the ground-truth centers.

        Args:
            features: (N, F, H, W) the heads' input.
            outputs: :meth:`CenterMaskHead.forward` of it.
            gt_instances: per image, gt_boxes, gt_classes, gt_masks in input pixels.
        """
        heatmap = outputs["heatmap"]
        shape_size = self.head.shape_size
        t = centermask_targets(
            gt_instances,
            num_classes=self.num_classes,
            feature_hw=heatmap.shape[-2:],
            stride=self.stride,
            shape_size=shape_size,
            min_overlap=self.gaussian_min_overlap,
        )
        points = self.head.at_points(features, t["batch_idx"], t["centers"])
        # Masks are assembled on the ground-truth center and size, over the box the S x S target
        # covers.
        masks = assemble_masks(
            shape_logits=points.get("shape"),
            saliency_logits=outputs.get("saliency"),
            saliency_channel=saliency_channel(t["classes"], self.saliency_class_specific),
            batch_idx=t["batch_idx"],
            boxes=t["boxes"],
            rois=t["boxes"],
            mask_size=shape_size,
        )
        losses = {
            "loss_heatmap": centernet_focal_loss(heatmap, t["heatmap"]),
            "loss_offset": reg_l1_loss(points["offset"], t["offsets"]),
            "loss_size": reg_l1_loss(points["size"], t["sizes"]),
            "loss_mask": mask_bce_loss(masks, t["masks"]),
        }
        if self.loss_weights["loss_saliency"] > 0:
            saliency = outputs["saliency"]
            target = saliency_targets(
                gt_instances,
                num_channels=saliency.shape[1],
                feature_hw=heatmap.shape[-2:],
                stride=self.stride,
            )
            losses["loss_saliency"] = saliency_bce_loss(saliency, target)
        return {k: v * self.loss_weights[k] for k, v in losses.items()}
