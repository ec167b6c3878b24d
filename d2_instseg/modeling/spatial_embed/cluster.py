"""Inference clustering of Spatial Embeddings (the released ``Cluster.cluster``, per class).

Shape shorthand:
    H, W: image size
    M:    number of foreground pixels of one class (seed > fg threshold)
    S:    number of sigma channels (1 or 2)
    C:    number of thing classes (seed maps)
    R:    number of instances found

For each class c, on the pixels whose seed exceeds ``fg_threshold``:
  1. take the unclustered pixel with the highest seed; stop if it is below ``seed_threshold``;
  2. its embedding is the center and its own sigma the bandwidth: phi_i = exp(-sum_d
     (e_i,d - e_seed,d)^2 exp(10 s_seed,d)); the proposal is {phi > 0.5} among the foreground;
  3. keep the proposal as an instance (score = the seed value) if it has more than ``min_pixels``
     pixels and more than ``min_unclustered`` of them are still unclustered;
  4. mark the proposal (kept or not) and the seed pixel as clustered; repeat while more than
     ``min_pixels`` pixels are unclustered.
A kept mask is the whole proposal, so masks of one class may overlap where a proposal covers
pixels claimed earlier (as in the reference). Each step is one vectorised pass over the M pixels.
"""

from typing import Tuple

import torch

from .embedding import gaussian_phi


def cluster_class(
    embedding: torch.Tensor,
    sigma: torch.Tensor,
    seed: torch.Tensor,
    *,
    seed_threshold: float,
    fg_threshold: float,
    min_pixels: int,
    min_unclustered: float = 0.5,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Instances of one class.

    Args:
        embedding: (2, H, W) pixel embeddings (x, y).
        sigma: (S, H, W) raw sigma.
        seed: (H, W) seed probabilities of the class.
        seed_threshold: minimum seed value of an instance's seed pixel.
        fg_threshold: pixels with seed > fg_threshold are the class's foreground.
        min_pixels: a proposal must have more than this many pixels.
        min_unclustered: fraction of a proposal that must still be unclustered to keep it.

    Returns:
        masks (R, H, W) bool and scores (R,) (the seed values of the seed pixels).
    """
    height, width = seed.shape
    fg = (seed > fg_threshold).flatten()
    if int(fg.sum()) <= min_pixels:
        return seed.new_zeros((0, height, width), dtype=torch.bool), seed.new_zeros(0)
    fg_index = fg.nonzero().squeeze(1)  # (M,)
    emb = embedding.flatten(1)[:, fg_index]  # (2, M)
    sig = sigma.flatten(1)[:, fg_index]  # (S, M)
    seed_fg = seed.flatten()[fg_index]  # (M,)
    unclustered = torch.ones_like(seed_fg, dtype=torch.bool)
    proposals, scores = [], []
    while int(unclustered.sum()) > min_pixels:
        score, i = (seed_fg * unclustered).max(dim=0)
        if float(score) < seed_threshold:
            break
        unclustered[i] = False
        phi = gaussian_phi(emb, emb[:, i].unsqueeze(0), sig[:, i].unsqueeze(0))[0]  # (M,)
        proposal = phi > 0.5
        size = int(proposal.sum())
        if size > min_pixels and int((proposal & unclustered).sum()) > min_unclustered * size:
            proposals.append(proposal)
            scores.append(score)
        unclustered &= ~proposal
    masks = seed.new_zeros((len(proposals), height * width), dtype=torch.bool)
    if proposals:
        masks[:, fg_index] = torch.stack(proposals)
    scores = torch.stack(scores) if scores else seed.new_zeros(0)
    return masks.view(-1, height, width), scores


def cluster_instances(
    embedding: torch.Tensor,
    sigma: torch.Tensor,
    seeds: torch.Tensor,
    *,
    seed_threshold: float,
    fg_threshold: float,
    min_pixels: int,
    min_unclustered: float = 0.5,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Instances of every class (:func:`cluster_class` on each seed map).

    Args:
        embedding: (2, H, W); sigma: (S, H, W); seeds: (C, H, W) seed probabilities.
        seed_threshold, fg_threshold, min_pixels, min_unclustered: see :func:`cluster_class`.

    Returns:
        masks (R, H, W) bool, classes (R,) int64, scores (R,) float, grouped by class.
    """
    height, width = seeds.shape[-2:]
    # A class whose highest seed is below seed_threshold has no instance: skip its foreground
    # gathering (one host sync for all classes; most classes are absent from most images).
    peaks = seeds.flatten(1).amax(dim=1).tolist() if seeds.numel() else [0.0] * len(seeds)
    masks = [seeds.new_zeros((0, height, width), dtype=torch.bool)]
    classes = [torch.zeros(0, dtype=torch.int64, device=seeds.device)]
    scores = [seeds.new_zeros(0)]
    for c, peak in enumerate(peaks):
        if peak < seed_threshold:
            continue
        class_masks, class_scores = cluster_class(
            embedding,
            sigma,
            seeds[c],
            seed_threshold=seed_threshold,
            fg_threshold=fg_threshold,
            min_pixels=min_pixels,
            min_unclustered=min_unclustered,
        )
        masks.append(class_masks)
        scores.append(class_scores)
        classes.append(torch.full_like(class_scores, c, dtype=torch.int64))
    return torch.cat(masks), torch.cat(classes), torch.cat(scores)
