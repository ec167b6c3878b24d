"""``SpatialEmbeddings``: proposal-free instance segmentation by clustering pixel embeddings with a
learned per-instance bandwidth (Neven et al., CVPR 2019).

Shape shorthand:
    B: batch size; H, W: padded input size; h_b, w_b: un-padded size of image b
    S: sigma channels; C: thing classes; R: instances found in one image
"""

from typing import Dict, List, Sequence

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import nn

from ...utils.config_registry import check_d2_instseg_config
from ..preprocess import preprocess_image
from .decoder import SpatialEmbedDecoder
from .embedding import coordinate_map, split_outputs
from .inference import spatial_embed_inference
from .loss import SpatialEmbedLoss


@META_ARCH_REGISTRY.register()
class SpatialEmbeddings(nn.Module):
    """Backbone (ERFNet or any Detectron2 backbone) + branched decoder; trained with
    :class:`SpatialEmbedLoss`; at inference :func:`spatial_embed_inference` clusters the outputs of
    :meth:`inference_network` (the part an export traces).

    Input: Detectron2's list of dicts ("image" (3, h, w), training: "instances" with ``gt_masks``
    BitMasks and ``gt_classes``; optional "height"/"width" of the output).
    Output (inference): per image {"instances": Instances with pred_masks (R, height, width) bool,
    pred_classes (R,), scores (R,) (seed value of each seed pixel), pred_boxes (from the masks)}.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        decoder: SpatialEmbedDecoder,
        loss: SpatialEmbedLoss,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        pixels_per_unit: float,
        seed_threshold: float,
        fg_threshold: float,
        min_pixels: int,
        min_unclustered: float = 0.5,
        max_detections: int = 100,
    ):
        """
        Args:
            backbone, decoder, loss: the modules (see their classes).
            pixel_mean, pixel_std: input normalisation, in the input format's channel order.
            pixels_per_unit: pixels per embedding unit of the coordinate map.
            seed_threshold, fg_threshold, min_pixels, min_unclustered: clustering thresholds.
            max_detections: at most this many instances per image (highest scores).
        """
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.loss = loss
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.pixels_per_unit = pixels_per_unit
        self.cluster_args = {
            "seed_threshold": seed_threshold,
            "fg_threshold": fg_threshold,
            "min_pixels": min_pixels,
            "min_unclustered": min_unclustered,
        }
        self.max_detections = max_detections
        stride = backbone.output_shape()[decoder.in_feature].stride
        # The decoder returns to full resolution only if the input is a multiple of the stride.
        self.size_divisibility = max(backbone.size_divisibility, stride)

    @classmethod
    def from_config(cls, cfg):
        check_d2_instseg_config(cfg)
        backbone = build_backbone(cfg)
        node = cfg.MODEL.SPATIAL_EMBED
        return {
            "backbone": backbone,
            "decoder": SpatialEmbedDecoder(cfg, backbone.output_shape()),
            "loss": SpatialEmbedLoss(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "pixels_per_unit": node.PIXELS_PER_UNIT,
            "seed_threshold": node.SEED_THRESHOLD,
            "fg_threshold": node.FG_THRESHOLD,
            "min_pixels": node.MIN_PIXELS,
            "min_unclustered": node.MIN_UNCLUSTERED,
            "max_detections": cfg.TEST.DETECTIONS_PER_IMAGE,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        # Padding goes to the bottom/right: the coordinates of real pixels do not move.
        divisibility = self.size_divisibility
        return preprocess_image(batched_inputs, self.pixel_mean, self.pixel_std, divisibility)

    # The inference path after the network, shared with exported models (d2_instseg.export).
    inference = staticmethod(spatial_embed_inference)

    def forward(self, batched_inputs: List[Dict]):
        if not self.training:
            return self.inference(self.inference_network, batched_inputs, **self.inference_params())
        images = self.preprocess_image(batched_inputs)
        out = self.inference_network(images.tensor)
        embedding = out["embedding"]
        coords = coordinate_map(
            *embedding.shape[-2:], self.pixels_per_unit, device=self.device, dtype=embedding.dtype
        )
        crops = [(slice(None), slice(0, h), slice(0, w)) for h, w in images.image_sizes]
        targets = [x["instances"].to(self.device) for x in batched_inputs]
        return self.loss(
            *([m[c] for m, c in zip(out[name], crops)] for name in ("embedding", "sigma", "seed")),
            [coords[c] for c in crops],
            targets,
        )

    def inference_params(self) -> Dict:
        """The keyword arguments of :func:`spatial_embed_inference` besides the network and
        inputs."""
        return {
            "pixel_mean": self.pixel_mean,
            "pixel_std": self.pixel_std,
            "size_divisibility": self.size_divisibility,
            "max_detections": self.max_detections,
            **self.cluster_args,
        }

    def inference_network(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The network: (B, 3, H, W) normalised images -> "embedding" (B, 2, H, W) = coordinates
        + tanh(offsets), "sigma" (B, S, H, W) raw, "seed" (B, C, H, W) probabilities."""
        # Made contiguous: with channels-last weights (TEST.CHANNELS_LAST) the decoder's output
        # comes out channels-last, and everything after reads it one channel plane at a time.
        outputs = self.decoder(self.backbone(images)).contiguous()
        coords = coordinate_map(
            outputs.shape[-2],
            outputs.shape[-1],
            self.pixels_per_unit,
            device=outputs.device,
            dtype=outputs.dtype,
        )
        embedding, sigma, seed = split_outputs(outputs, coords, self.decoder.n_sigma)
        return {"embedding": embedding, "sigma": sigma, "seed": seed}
