"""The Spatial Embeddings loss (Neven et al., CVPR 2019; the released ``SpatialEmbLoss``).

Shape shorthand:
    H, W: image size (the prediction cropped to the un-padded image)
    N:    H * W
    K:    number of instances of the image (non-empty masks)
    S:    number of sigma channels (1 or 2)
    C:    number of thing classes (one seed map each, one-vs-all)

Per image, for each instance k with pixel set M_k and class c_k:
    C_k   = mean of the pixel coordinates over M_k (``to_center``) or mean of the embeddings
    s_k   = mean raw sigma over M_k (per sigma channel)
    phi_k = exp(-sum_d (e_d - C_k,d)^2 exp(10 s_k,d))       over all N pixels
    inst  = mean_k lovasz_hinge(2 phi_k - 1, M_k)
    var   = mean_k mean_{i in M_k, d} (s_i,d - s_k,d.detach())^2
    seed  = [sum_c sum_{i not of class c} seed_c,i^2
             + w_fg sum_k sum_{i in M_k} (seed_{c_k},i - phi_k,i.detach())^2] / N
The image loss is w_inst inst + w_var var + w_seed seed; the batch loss is the mean over images.
All instances of an image are processed at once as (K, N) tensors; the Lovasz sort is a batched
sort of K rows.
"""

from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.structures import Instances
from torch import nn

from ...layers import lovasz_hinge
from .embedding import gaussian_phi


def spatial_embed_image_loss(
    embedding: torch.Tensor,
    sigma: torch.Tensor,
    seed: torch.Tensor,
    coords: torch.Tensor,
    inst_masks: torch.Tensor,
    inst_classes: torch.Tensor,
    *,
    to_center: bool = True,
    foreground_weight: float = 10.0,
) -> Dict[str, torch.Tensor]:
    """The three loss terms of one image.

    Args:
        embedding: (2, H, W) pixel embeddings e = coords + tanh(offset).
        sigma: (S, H, W) raw sigma.
        seed: (C, H, W) seed probabilities (after sigmoid).
        coords: (2, H, W) coordinate map of the same pixels.
        inst_masks: (K, H, W) bool instance masks (K may be 0; empty masks are ignored).
        inst_classes: (K,) int64 class of each mask, in [0, C).
        to_center: center = pixel centroid (True, the released default) or mean embedding.
        foreground_weight: w_fg, weight of the seed regression inside instances.

    Returns:
        dict with scalar tensors "instance" (mean Lovasz hinge over instances, 0 without
        instances), "variance" (mean sigma variance over instances) and "seed" (per-pixel sum).
    """
    num_pixels = embedding.shape[1] * embedding.shape[2]
    emb = embedding.flatten(1)  # (2, N)
    sig = sigma.flatten(1)  # (S, N)
    seed_flat = seed.flatten(1)  # (C, N)
    keep = inst_masks.flatten(1).any(dim=1)
    masks = inst_masks.flatten(1)[keep].to(emb.dtype)  # (K, N)
    classes = inst_classes[keep]

    # Background of seed map c: every pixel outside the instances of class c (one-vs-all).
    onehot = nn.functional.one_hot(classes, seed_flat.shape[0]).to(emb.dtype)  # (K, C)
    semantic = (onehot.t() @ masks) > 0  # (C, N)
    seed_bg = (seed_flat**2 * (~semantic)).sum()
    if masks.shape[0] == 0:
        # Keep offsets and sigma in the graph (multi-process training needs every parameter used).
        zero = (emb.sum() + sig.sum()) * 0.0
        return {"instance": zero, "variance": zero, "seed": seed_bg / num_pixels}

    counts = masks.sum(dim=1, keepdim=True)  # (K, 1)
    source = coords.flatten(1) if to_center else emb
    centers = masks @ source.t() / counts  # (K, 2)
    sigma_mean = masks @ sig.t() / counts  # (K, S)
    # Variance of the raw sigma inside each instance, around its detached mean (before the exp).
    sq_dev = (sig.unsqueeze(0) - sigma_mean.detach().unsqueeze(-1)) ** 2  # (K, S, N)
    variance = (sq_dev * masks.unsqueeze(1)).sum(dim=(1, 2)) / (counts.squeeze(1) * sig.shape[0])

    phi = gaussian_phi(emb, centers, sigma_mean)  # (K, N)
    instance = lovasz_hinge(2.0 * phi - 1.0, masks)  # (K,)
    seed_fg = (masks * (seed_flat[classes] - phi.detach()) ** 2).sum()
    return {
        "instance": instance.mean(),
        "variance": variance.mean(),
        "seed": (seed_bg + foreground_weight * seed_fg) / num_pixels,
    }


class SpatialEmbedLoss(nn.Module):
    """Batch loss of Spatial Embeddings: the weighted per-image terms averaged over images."""

    @configurable
    def __init__(
        self,
        *,
        instance_weight: float = 1.0,
        variance_weight: float = 10.0,
        seed_weight: float = 1.0,
        foreground_weight: float = 10.0,
        to_center: bool = True,
    ):
        """
        Args:
            instance_weight, variance_weight, seed_weight: w_inst, w_var, w_seed.
            foreground_weight: w_fg of the seed term inside instances.
            to_center: center of attraction = pixel centroid (True) or mean embedding (False).
        """
        super().__init__()
        self.weights = {
            "instance": instance_weight,
            "variance": variance_weight,
            "seed": seed_weight,
        }
        self.foreground_weight = foreground_weight
        self.to_center = to_center

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.SPATIAL_EMBED
        return {
            "instance_weight": node.INSTANCE_LOSS_WEIGHT,
            "variance_weight": node.VARIANCE_LOSS_WEIGHT,
            "seed_weight": node.SEED_LOSS_WEIGHT,
            "foreground_weight": node.FOREGROUND_WEIGHT,
            "to_center": node.TO_CENTER,
        }

    def forward(
        self,
        embeddings: List[torch.Tensor],
        sigmas: List[torch.Tensor],
        seeds: List[torch.Tensor],
        coords: List[torch.Tensor],
        targets: List[Instances],
    ) -> Dict[str, torch.Tensor]:
        """
        Args:
            embeddings, sigmas, seeds, coords: per image, (2, H_b, W_b), (S, H_b, W_b),
                (C, H_b, W_b) and (2, H_b, W_b) at the image's un-padded size.
            targets: per image, Instances with ``gt_masks`` (BitMasks, (K_b, H_b, W_b); may be
                absent when K_b = 0) and ``gt_classes`` ((K_b,) int64).

        Returns:
            {"loss_instance", "loss_variance", "loss_seed"}: weighted, averaged over images.
        """
        totals = {name: 0.0 for name in self.weights}
        for emb, sig, seed, xy, target in zip(embeddings, sigmas, seeds, coords, targets):
            if target.has("gt_masks"):
                masks = target.gt_masks.tensor.bool()
            elif len(target) == 0:  # Detectron2 adds no gt_masks to an image without annotations
                masks = seed.new_zeros((0,) + tuple(seed.shape[1:]), dtype=torch.bool)
            else:
                raise ValueError(
                    "SpatialEmbeddings needs gt_masks: set MODEL.MASK_ON True (DatasetMapper drops "
                    "the masks otherwise) and INPUT.MASK_FORMAT 'bitmask'"
                )
            terms = spatial_embed_image_loss(
                emb,
                sig,
                seed,
                xy,
                masks,
                target.gt_classes,
                to_center=self.to_center,
                foreground_weight=self.foreground_weight,
            )
            for name in totals:
                totals[name] = totals[name] + terms[name]
        num_images = max(len(targets), 1)
        return {f"loss_{n}": self.weights[n] * totals[n] / num_images for n in self.weights}
