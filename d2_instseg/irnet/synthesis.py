"""Label synthesis of IRNet: displacement field -> centroids -> class-agnostic instance map; class
boundaries -> transition matrix -> random walk of (instance-wise) CAMs -> pseudo labels.

Shape shorthand (coordinates (y, x)):
    h, w: stride-4 grid of an image (``relations.strided_size``);  H, W: image size
    C: classes present in the image;  K: class-agnostic instances (clusters) found;  n = h * w
Displacements are in stride-4 pixels, channel 0 = dy, channel 1 = dx, pointing from a pixel to the
centroid of its instance.
"""

import warnings
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..modeling.irnet.relations import sparse_affinity

_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def find_centroids_with_refinement(displacement: torch.Tensor, iterations: int) -> torch.Tensor:
    """Move every pixel along the displacement field until it settles on its instance centroid.

    displacement: (2, h, w). Each step adds the bilinearly sampled displacement at the current
    (sub-pixel) position and clips to the map. Returns (2, h, w) int64 final positions (rounded).
    """
    _, h, w = displacement.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=displacement.dtype, device=displacement.device),
        torch.arange(w, dtype=displacement.dtype, device=displacement.device),
        indexing="ij",
    )
    pos = torch.stack([ys, xs])
    limit = torch.tensor([h - 1, w - 1], dtype=pos.dtype, device=pos.device).view(2, 1, 1)
    scale = torch.clamp(limit, min=1.0)
    for _ in range(iterations):
        # grid_sample wants (x, y) in [-1, 1] (align_corners=True: -1 and 1 are pixel centres)
        grid = (pos.flip(0) / scale.flip(0) * 2 - 1).permute(1, 2, 0)[None]
        step = F.grid_sample(displacement[None], grid, mode="bilinear", align_corners=True)[0]
        pos = torch.minimum(torch.clamp(pos + step, min=0.0), limit)
    return pos.round().long()


def cluster_centroids(
    centroids: torch.Tensor, displacement: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Group pixels whose centroids fall in the same connected "weak displacement" region.

    centroids: (2, h, w) int64 from :func:`find_centroids_with_refinement`; displacement: (2, h, w).
    Regions are the 4-connected components of ||D|| < threshold. Pixels whose centroid lands outside
    every region share one extra cluster. Returns (h, w) int64 cluster ids 0..K-1 (consecutive).
    """
    weak = (displacement.norm(dim=0) < threshold).cpu().numpy()
    regions, _ = ndimage.label(weak, structure=_FOUR_CONNECTED)
    cy, cx = centroids.cpu().numpy()
    clusters = regions[cy, cx]
    _, consecutive = np.unique(clusters, return_inverse=True)
    return torch.from_numpy(consecutive.reshape(clusters.shape).astype(np.int64))


def transition_matrix(affinity: torch.Tensor, beta: float) -> torch.Tensor:
    """One step of the random walk: T = A^beta / column sums (Hadamard power, then each column
    normalised to 1). affinity: sparse (n, n) (:func:`sparse_affinity`) -> sparse (n, n)."""
    scaled = affinity.coalesce().pow(beta)
    columns = torch.zeros(scaled.shape[1], dtype=scaled.dtype, device=scaled.device)
    columns.index_add_(0, scaled.indices()[1], scaled.values())
    normalised = scaled.values() / columns[scaled.indices()[1]]
    # The indices are the coalesced ones of `scaled`: flagged so, they are not sorted again.
    return torch.sparse_coo_tensor(
        scaled.indices(), normalised, scaled.shape, check_invariants=False, is_coalesced=True
    )


def propagate(seeds: torch.Tensor, trans: torch.Tensor, steps: int) -> torch.Tensor:
    """seeds (M, n) x T^steps, one sparse product per step, in float64; returns seeds' dtype.

    trans: sparse (n, n). t steps cost t x nnz(T) x M, where the authors' t = 2^e by e squarings
    of a dense T cost e x n^3 and n^2 memory (a 74 x 85 grid, radius 2, 100 maps, t = 32: 18 s
    for the squarings, 0.16 s for the steps; 2026-12-07). float64 because rounding adds up over
    the steps (a 40 x 50 map, radius 5, t = 256, against the walk in float64 throughout: float32
    steps and affinities 1.2e-4 off, the float32 squarings 2.8e-5, float64 steps 4e-8). After each
    step, scores below the square root of float64's smallest normal number are set to 0, so no
    product is subnormal (CPUs compute with subnormals 10-30x slower, and a walk's far tail decays
    towards 0); T keeps the seeds' total, so what is zeroed is at most n x 1.5e-154 of it."""
    floor = torch.finfo(torch.float64).tiny ** 0.5
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        step = trans.t().double().to_sparse_csr()  # (x T)^T = T^T x^T: scores stay in columns
    scores = seeds.t().double().contiguous()
    for _ in range(steps):
        scores = torch.sparse.mm(step, scores)
        scores = scores.masked_fill(scores < floor, 0.0)
    return scores.t().to(seeds.dtype)


def random_walk(
    scores: torch.Tensor, boundary: torch.Tensor, *, radius: int, beta: float, exp_times: int
) -> torch.Tensor:
    """Propagate score maps with the random walk defined by the class-boundary map.

    scores: (M, h, w) (CAMs or instance-wise CAMs); boundary: (h, w) in [0, 1]. The seeds are first
    multiplied by (1 - B) so boundary pixels do not spread their scores; vec(rw) = vec(x (1 - B))
    T^t with t = 2^exp_times, the affinities and the walk in float64 (:func:`propagate`).
    Returns (M, h, w) in the scores' dtype.
    """
    m, h, w = scores.shape
    trans = transition_matrix(sparse_affinity(boundary.double(), radius), beta)
    seeds = (scores * (1.0 - boundary)).reshape(m, h * w)
    return propagate(seeds, trans, 2**exp_times).reshape(m, h, w)


def upsample_scores(scores: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    """(M, h, w) stride-4 scores -> (M, H, W): bilinear x4, cropped to the image, divided by the
    global max (as IRNet does for both label kinds)."""
    up = F.interpolate(scores[None], scale_factor=4, mode="bilinear", align_corners=False)[0]
    up = up[:, : image_size[0], : image_size[1]]
    return up / torch.clamp(up.max(), min=1e-5)


def semantic_from_scores(
    scores: torch.Tensor, classes: Sequence[int], bg_thresh: float
) -> np.ndarray:
    """scores: (C, H, W) normalised propagated CAMs of the ``classes`` (contiguous ids) -> (H, W)
    uint8 labels, 0 = background (constant score ``bg_thresh``), c + 1 = class c."""
    keys = np.array([0] + [c + 1 for c in classes], dtype=np.uint8)
    full = torch.cat([torch.full_like(scores[:1], bg_thresh), scores])
    return keys[full.argmax(dim=0).cpu().numpy()]


def detect_instances(
    scores: torch.Tensor,
    classes: Sequence[int],
    num_clusters: int,
    *,
    bg_thresh: float,
    min_area_frac: float,
) -> List[Dict]:
    """Instances from the normalised propagated instance-wise CAMs.

    scores: (C * K, H, W), channel c * K + k = class ``classes[c]`` in cluster k. Every pixel takes
    the argmax over a background plane (``bg_thresh``) and the channels; each channel's 4-connected
    components are separate instances (as in the authors' code: two regions touching only at a
    corner are two instances), scored by their max score. Segments smaller than
    ``min_area_frac`` of the image keep score 0 (not dropped). Returns dicts with ``mask`` (H, W)
    bool, ``category`` (contiguous id) and ``score``.
    """
    full = torch.cat([torch.full_like(scores[:1], bg_thresh), scores])
    winner = full.argmax(dim=0).cpu().numpy()
    values = scores.cpu().numpy()
    min_area = min_area_frac * winner.size
    out = []
    for channel in np.unique(winner[winner > 0]) - 1:
        segments, count = ndimage.label(winner == channel + 1, structure=_FOUR_CONNECTED)
        for seg_id in range(1, count + 1):
            mask = segments == seg_id
            score = float(values[channel][mask].max()) if mask.sum() >= min_area else 0.0
            out.append(
                {"mask": mask, "category": int(classes[channel // num_clusters]), "score": score}
            )
    return out


def synthesize_image_labels(
    cams: torch.Tensor,
    classes: Sequence[int],
    boundary: torch.Tensor,
    displacement: torch.Tensor,
    image_size: Tuple[int, int],
    *,
    radius: int,
    beta: float,
    exp_times: int,
    centroid_iterations: int,
    cluster_thresh: float,
    sem_bg_thresh: float,
    ins_bg_thresh: float,
    min_area_frac: float,
) -> Tuple[np.ndarray, List[Dict]]:
    """Pseudo labels of one image.

    cams: (C, h, w) stride-4 CAMs of the C ``classes`` present (normalised); boundary: (h, w);
    displacement: (2, h, w) (mean-shift already removed). Returns the semantic map (H, W) uint8
    (0 = background, c + 1 = class c) and the instances of :func:`detect_instances`.
    """
    if len(classes) == 0:
        return np.zeros(image_size, dtype=np.uint8), []
    centroids = find_centroids_with_refinement(displacement, centroid_iterations)
    clusters = cluster_centroids(centroids, displacement, cluster_thresh).to(cams.device)
    num_clusters = int(clusters.max()) + 1
    one_hot = F.one_hot(clusters, num_clusters).permute(2, 0, 1).to(cams.dtype)  # (K, h, w)
    instance_cams = (cams[:, None] * one_hot[None]).flatten(0, 1)  # (C * K, h, w)
    # One transition matrix serves the semantic and the instance-wise CAMs.
    walked = random_walk(
        torch.cat([cams, instance_cams]), boundary, radius=radius, beta=beta, exp_times=exp_times
    )
    semantic = semantic_from_scores(
        upsample_scores(walked[: len(classes)], image_size), classes, sem_bg_thresh
    )
    instances = detect_instances(
        upsample_scores(walked[len(classes) :], image_size),
        classes,
        num_clusters,
        bg_thresh=ins_bg_thresh,
        min_area_frac=min_area_frac,
    )
    return semantic, instances
