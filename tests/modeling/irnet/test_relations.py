"""Pair indexing, path offsets, boundary -> affinity and pair labels against hand-listed values."""

import numpy as np
import pytest
import torch

from d2_instseg.data.dataset_mappers.irnet import downsample_label
from d2_instseg.modeling.irnet.relations import (
    boundary_to_affinity,
    pair_labels,
    path_offsets,
    search_directions,
    sparse_affinity,
    strided_size,
)


def test_search_directions_radius_2_and_3():
    """r=2: (0,1) then y=1, x in -1..1 (1 + x^2 < 4). r=3: (0,1), (0,2), then y=1 and y=2 with
    x in -2..2 (y^2 + x^2 <= 8 < 9), 5 each: 12 directions, a half-disk with no pair twice."""
    assert search_directions(2) == ((0, 1), (1, -1), (1, 0), (1, 1))
    dirs = search_directions(3)
    assert len(dirs) == 12
    assert dirs[:2] == ((0, 1), (0, 2))
    assert set(dirs[2:]) == {(y, x) for y in (1, 2) for x in range(-2, 3)}
    with pytest.raises(ValueError):
        search_directions(1)


def test_path_offsets_hand_listed():
    """Pixels at distance < 1 from the segment. (1,-1): (0,-1) and (1,0) are at 1/sqrt(2).
    (2,1) (r=3): (0,1) and (2,0) project at t=0.2 / 0.8 at distance sqrt(0.8) = 0.894 < 1, while
    (1,-1) and (1,2) are at sqrt(1.8) = 1.34."""
    paths = dict(zip(search_directions(2), path_offsets(2)))
    assert set(paths[(0, 1)]) == {(0, 0), (0, 1)}
    assert set(paths[(1, 0)]) == {(0, 0), (1, 0)}
    assert set(paths[(1, 1)]) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert set(paths[(1, -1)]) == {(0, 0), (0, -1), (1, 0), (1, -1)}
    paths3 = dict(zip(search_directions(3), path_offsets(3)))
    assert set(paths3[(2, 1)]) == {(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)}
    assert set(paths3[(2, 0)]) == {(0, 0), (1, 0), (2, 0)}


def test_path_offsets_radius_10_exact_integer_test():
    """Direction (3, 4) at the training radius 10, listed by hand with the authors' test
    (3 * ox - 4 * oy)^2 < 25 over the box oy in 0..3, ox in 0..4: rows 0: ox 0-1; 1: ox 0-2;
    2: ox 2-4; 3: ox 3-4 (10 pixels). (1, 3) and (2, 1) are at distance exactly 1
    ((3 * 3 - 4)^2 = (3 - 8)^2 = 25) and are not on the path; (4, 3) is the mirror image."""
    paths = dict(zip(search_directions(10), path_offsets(10)))
    expected = {(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 2), (2, 3), (2, 4), (3, 3), (3, 4)}
    assert set(paths[(3, 4)]) == expected
    assert set(paths[(4, 3)]) == {(x, y) for y, x in expected}
    assert set(paths[(3, -4)]) == {(y, -x) for y, x in expected}


def test_pair_labels_tiny_map():
    """r=2 on a 3x4 map: source region is rows 0..1, map cols 1..2 (h=2, w=2).
    src (0,1)=0:   ->(0,2)=1 neg, ->(1,0)=0 bg-pos, ->(1,1)=255 -, ->(1,2)=1 neg
    src (0,2)=1:   ->(0,3)=1 fg,  ->(1,1)=255 -,    ->(1,2)=1 fg,   ->(1,3)=1 fg
    src (1,1)=255: nothing
    src (1,2)=1:   ->(1,3)=1 fg,  ->(2,1)=2 neg,    ->(2,2)=1 fg,   ->(2,3)=1 fg
    Totals: 1 bg-pos, 6 fg-pos, 3 neg."""
    label = torch.tensor([[0, 0, 1, 1], [0, 255, 1, 1], [2, 2, 1, 1]])[None]
    bg, fg, neg = pair_labels(label, 2)
    assert bg.shape == (1, 4, 2, 2)
    assert (int(bg.sum()), int(fg.sum()), int(neg.sum())) == (1, 6, 3)
    # [direction, source row, source col]
    assert bg[0, 1, 0, 0]
    assert neg[0, 0, 0, 0] and neg[0, 3, 0, 0] and neg[0, 1, 1, 1]
    assert fg[0, :, 0, 1].tolist() == [True, False, True, True]
    assert fg[0, :, 1, 1].tolist() == [True, False, True, True]
    assert not (bg | fg | neg)[0, :, 1, 0].any()


def test_boundary_to_affinity_hand_map():
    """r=2 on a 2x3 map has one source, map pixel (0,1) (B=0.2).
    (0,1): path B(0,1), B(0,2) -> max 0.3 -> a = 0.7
    (1,-1): B(0,1), B(0,0), B(1,1), B(1,0) -> 0.5 -> 0.5
    (1,0): B(0,1), B(1,1) -> 0.5 -> 0.5
    (1,1): B(0,1), B(0,2), B(1,1), B(1,2) -> 0.9 -> 0.1"""
    boundary = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.9]])[None]
    aff = boundary_to_affinity(boundary, 2)
    assert aff.shape == (1, 4, 1, 1)
    torch.testing.assert_close(aff.flatten(), torch.tensor([0.7, 0.5, 0.5, 0.1]))


def test_boundary_to_affinity_wall_blocks_pairs_crossing_it():
    """r=3 on a 3x5 map: one source, map pixel (0,2); a wall (B=1) on column 3. Every direction with
    dx >= 1 ends on or crosses the wall (a=0); the 6 others stay left of it (a=1)."""
    boundary = torch.zeros(1, 3, 5)
    boundary[:, :, 3] = 1.0
    aff = boundary_to_affinity(boundary, 3)[0, :, 0, 0]
    expected = torch.tensor([0.0 if dx >= 1 else 1.0 for _, dx in search_directions(3)])
    torch.testing.assert_close(aff, expected)


def test_boundary_to_affinity_gradient_reaches_path_max():
    """d a / d B is -1 at the max of the path, 0 elsewhere (a = 1 - max)."""
    boundary = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.9]])[None].requires_grad_()
    boundary_to_affinity(boundary, 2)[0, 0].sum().backward()  # direction (0,1): max at (0,2)
    expected = torch.zeros(1, 2, 3)
    expected[0, 0, 2] = -1.0
    torch.testing.assert_close(boundary.grad, expected)


def test_sparse_affinity_row():
    """1x3 map B = [0, 0.5, 0], r=2: only horizontal neighbours are paired; a_01 = a_12 = 1 - 0.5,
    pixels 0 and 2 are 2 apart (not < r) and get 0; self-loops are 1."""
    dense = sparse_affinity(torch.tensor([[0.0, 0.5, 0.0]]), 2).to_dense()
    expected = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]])
    torch.testing.assert_close(dense, expected)


def test_sparse_affinity_symmetric_and_local():
    """On a 4x5 map with r=2, each pixel is paired with its 8 neighbours only (|dy|,|dx| <= 1): 20
    self-loops + 2 x (15 horizontal + 16 vertical + 2 x 12 diagonal pairs) = 130 entries."""
    sparse = sparse_affinity(torch.rand(4, 5), 2)
    assert sparse.is_sparse and sparse._nnz() == 130
    dense = sparse.to_dense()
    torch.testing.assert_close(dense, dense.t())
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    near = ((ys[:, None] - ys[None]).abs() <= 1) & ((xs[:, None] - xs[None]).abs() <= 1)
    assert (dense[~near] == 0).all()
    assert (dense[near] > 0).all()


def test_strided_size_and_downsample():
    """((H-1)//4+1, (W-1)//4+1): 97 -> 25, 96 -> 24; nearest = every 4th pixel."""
    assert strided_size(97, 96) == (25, 24)
    label = np.arange(97 * 96).reshape(97, 96)
    assert downsample_label(label).shape == (25, 24)
    assert downsample_label(label)[1, 2] == label[4, 8]
