"""Step 3 of IRNet: the displacement-field branch and the class-boundary branch on the multi-level
features of a frozen backbone (the CAM network's, loaded from its checkpoint).

Shape shorthand: N images; (Hp, Wp) padded batch size (multiple of 16); (h4, w4) = (Hp/4, Wp/4),
the stride-4 grid all outputs live on. Displacements are (dy, dx) in stride-4 pixels.
"""

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import nn

from ...layers.resize import resize_and_crop
from ...utils.config_registry import check_d2_instseg_config
from ..preprocess import preprocess_image
from .losses import boundary_loss, displacement_loss
from .relations import IGNORE_LABEL, boundary_to_affinity, pair_labels


def _conv_gn_relu(in_ch: int, out_ch: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.GroupNorm(groups, out_ch), nn.ReLU(inplace=True)
    )


@META_ARCH_REGISTRY.register()
class IRNetRelations(nn.Module):
    """IRNet: class-boundary map B and displacement field D from a frozen backbone.

    Training input: dicts with ``image`` (3, H, W) and ``relation_label`` (ceil(H/4), ceil(W/4))
    int64 (0 = confident bg, c + 1 = class c, 255 = unsure); returns ``loss_boundary`` and
    ``loss_displacement`` (the total is their sum: (L_pos + L_neg)/2 + (L_fg + L_bg)/2).
    Inference: ``[{"boundary": (h, w) in [0, 1], "displacement": (2, h, w)}]`` on each image's own
    stride-4 grid; B averages the logits of the image and its flip, D (from the image only) has the
    mean displacement ``displacement_mean`` removed (the loss only fixes D up to a constant).
    """

    # the displacement branch's modules (its learning rate is MODEL.IRNET.IRN.DISPLACEMENT_LR_MULT
    # x)
    DISPLACEMENT_MODULES = (
        "displacement_levels",
        "displacement_fuse_deep",
        "displacement_fuse",
        "displacement_out",
    )

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        in_features: Sequence[str],
        radius: int,
        boundary_dim: int,
        displacement_dims: Sequence[int],
        displacement_dim: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
    ):
        super().__init__()
        self.backbone = backbone
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.in_features = list(in_features)
        self.radius = radius
        shapes = backbone.output_shape()
        channels = [shapes[f].channels for f in in_features]
        self.boundary_levels = nn.ModuleList([_conv_gn_relu(c, boundary_dim, 4) for c in channels])
        self.boundary_out = nn.Conv2d(boundary_dim * len(channels), 1, 1, bias=True)
        self.displacement_levels = nn.ModuleList(
            [
                _conv_gn_relu(c, d, 16 if d >= 128 else 8)
                for c, d in zip(channels, displacement_dims)
            ]
        )
        fused = displacement_dim
        self.displacement_fuse_deep = _conv_gn_relu(sum(displacement_dims[2:]), fused, 16)
        self.displacement_fuse = _conv_gn_relu(sum(displacement_dims[:2]) + fused, fused, 16)
        self.displacement_out = nn.Conv2d(fused, 2, 1, bias=False)
        self.register_buffer("displacement_mean", torch.zeros(2))
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        check_d2_instseg_config(cfg)
        irn = cfg.MODEL.IRNET.IRN
        return {
            "backbone": build_backbone(cfg),
            "in_features": irn.IN_FEATURES,
            "radius": irn.RADIUS,
            "boundary_dim": irn.BOUNDARY_DIM,
            "displacement_dims": irn.DISPLACEMENT_DIMS,
            "displacement_dim": irn.DISPLACEMENT_DIM,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    def train(self, mode: bool = True):
        """The backbone stays in eval mode (frozen BN statistics), as in the paper."""
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def size_divisibility(self) -> int:
        return max(16, self.backbone.size_divisibility)

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        divisibility = self.size_divisibility
        return preprocess_image(batched_inputs, self.pixel_mean, self.pixel_std, divisibility)

    def pad_for_pairs(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, Hp, Wp) -> (N, 3, Hp', Wp'): zero (mean colour) padding at the bottom / right so
        the stride-4 grid has room for the pairs of radius r (r rows, 2r - 1 columns, i.e. at least
        4r x 4(2r - 1) px, rounded up to the size divisibility). The padded cells are labelled
        unsure (255) by :meth:`_relation_labels`, so they add no pair: small training images then
        train instead of failing in ``source_size``."""
        div = self.size_divisibility
        need = (4 * self.radius, 4 * (2 * self.radius - 1))
        pad = [max(-(-n // div) * div - s, 0) for n, s in zip(need, images.shape[-2:])]
        return F.pad(images, (0, pad[1], 0, pad[0]))

    def layers(self, images: torch.Tensor):
        """(N, 3, Hp, Wp) normalised images -> boundary logits (N, 1, h4, w4) and displacement
        (N, 2, h4, w4)."""
        with torch.no_grad():
            feats = self.backbone(images)
        feats = [feats[f].detach() for f in self.in_features]
        size4 = (images.shape[-2] // 4, images.shape[-1] // 4)
        edges = [resize_and_crop(m(f), size4) for m, f in zip(self.boundary_levels, feats)]
        boundary = self.boundary_out(torch.cat(edges, dim=1))
        dps = [m(f) for m, f in zip(self.displacement_levels, feats)]
        size8 = dps[2].shape[-2:]
        deep = torch.cat([dps[2]] + [resize_and_crop(d, size8) for d in dps[3:]], dim=1)
        deep = resize_and_crop(self.displacement_fuse_deep(deep), size4)
        shallow = [resize_and_crop(d, size4) for d in dps[:2]]
        displacement = self.displacement_out(self.displacement_fuse(torch.cat(shallow + [deep], 1)))
        return boundary, displacement

    def forward(self, batched_inputs: List[Dict]):
        images = self.preprocess_image(batched_inputs)
        if self.training:
            boundary, displacement = self.layers(self.pad_for_pairs(images.tensor))
            labels = self._relation_labels(batched_inputs, boundary)
            return self.losses(boundary, displacement, labels)
        return self.inference(images)

    def _relation_labels(self, batched_inputs: List[Dict], like: torch.Tensor) -> torch.Tensor:
        """(N, h4, w4) int64 labels, padded with 255 (unsure) to the padded grid."""
        labels = like.new_full((len(batched_inputs),) + like.shape[-2:], IGNORE_LABEL).long()
        for i, x in enumerate(batched_inputs):
            lab = x["relation_label"].to(labels.device)
            labels[i, : lab.shape[0], : lab.shape[1]] = lab
        return labels

    def losses(self, boundary_logits, displacement, labels) -> Dict[str, torch.Tensor]:
        bg_pos, fg_pos, neg = pair_labels(labels, self.radius)
        affinity = boundary_to_affinity(torch.sigmoid(boundary_logits[:, 0]), self.radius)
        lb = boundary_loss(affinity, bg_pos, fg_pos, neg)
        ld = displacement_loss(displacement, bg_pos, fg_pos, self.radius)
        return {"loss_boundary": lb["loss_boundary"], "loss_displacement": ld["loss_displacement"]}

    def inference(self, images: ImageList) -> List[Dict]:
        x = images.tensor
        results = []
        for i, (h, w) in enumerate(images.image_sizes):
            logits, disp = self.layers(torch.stack([x[i], x[i].flip(-1)]))
            boundary = torch.sigmoid(logits[0, 0] / 2 + logits[1, 0].flip(-1) / 2)
            disp = disp[0] - self.displacement_mean.view(2, 1, 1)
            h4, w4 = (h - 1) // 4 + 1, (w - 1) // 4 + 1
            results.append({"boundary": boundary[:h4, :w4], "displacement": disp[:, :h4, :w4]})
        return results
