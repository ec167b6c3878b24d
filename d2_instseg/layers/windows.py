"""Start offsets of overlapping windows along one axis: CPNet's sliding window and the tiled
inference of large images."""

import math
from typing import List

__all__ = ["window_starts"]


def window_starts(length: int, window: int, stride: int) -> List[int]:
    """Start offsets of windows of ``window`` every ``stride`` covering ``[0, length)``; the last
    window is shifted back to end at ``length`` (one window at 0 when ``length <= window``)."""
    count = max(math.ceil((length - window) / stride), 0) + 1
    return [min(i * stride, max(length - window, 0)) for i in range(count)]
