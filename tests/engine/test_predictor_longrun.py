"""A Predictor that lives for days: 2,000 calls on images of varied sizes keep resident memory
within a bound after warm-up, and calls from 4 threads at once give the outputs of sequential
calls."""

import threading

import numpy as np
import psutil
import pytest
import torch

from d2_instseg.engine import Predictor

from ..conftest import shapes_cfg

# eight sizes, cycled: every shape the kernels see occurs during warm-up
SIZES = [(64, 64), (80, 96), (96, 80), (100, 120), (72, 130), (130, 72), (90, 90), (110, 100)]
CALLS = 2000
# After warm-up (every size seen twice) nothing should accumulate per call; the bound leaves room
# for allocator noise (glibc keeps and trims freed blocks, PyTorch's CPU allocator caches): 50 MB
# is ~100 outputs of the largest image, so a leak of even one output per 20 calls would exceed it.
MAX_GROWTH_MB = 50


def _images():
    rng = np.random.default_rng(0)
    return [(rng.random((h, w, 3)) * 255).astype(np.uint8) for h, w in SIZES]


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return Predictor(shapes_cfg("configs/shapes/fcn8s.yaml"))


def test_memory_stays_bounded_over_2000_calls(predictor):
    images = _images()
    process = psutil.Process()
    for image in images * 2:
        predictor(image)
    before = process.memory_info().rss
    peak = before
    for i in range(CALLS):
        out = predictor(images[i % len(images)])
        assert out["sem_seg"].shape[1:] == images[i % len(images)].shape[:2]
        if i % 100 == 99:
            peak = max(peak, process.memory_info().rss)
    growth = (max(peak, process.memory_info().rss) - before) / 2**20
    print(f"\nRSS after warm-up {before / 2**20:.0f} MB, growth over {CALLS} calls {growth:.1f} MB")
    assert growth < MAX_GROWTH_MB


def test_four_threads_give_the_sequential_outputs(predictor):
    """4 threads x 50 calls (the eight images in turn) at once: each output equals the sequential
    one for its image (to float rounding: the threads share the intra-op thread pool, which may
    split reductions differently; 1e-5 relative is far below any change of the argmax)."""
    images = _images()
    expected = [predictor(image)["sem_seg"] for image in images]
    mismatches, errors = [], []

    def worker(offset):
        try:
            for i in range(50):
                k = (offset + i) % len(images)
                out = predictor(images[k])["sem_seg"]
                if not torch.allclose(out, expected[k], rtol=1e-5, atol=1e-6):
                    mismatches.append((offset, i, k))
        except Exception as e:  # reported below, with the thread's context
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and mismatches == []
