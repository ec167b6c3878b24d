"""The one walk shared by the int8 export (on an ONNX graph) and mixed-precision inference (on the
eager autograd graph): from an output back to the layer that makes it."""

from typing import Callable, Optional, TypeVar

__all__ = ["walk_back"]

Node = TypeVar("Node")


def walk_back(
    node: Optional[Node],
    is_layer: Callable[[Node], bool],
    previous: Callable[[Node], Optional[Node]],
    steps: int = 8,
) -> Optional[Node]:
    """The first node, from ``node`` back along ``previous`` (its first input's producer), for
    which ``is_layer`` holds; None when the walk ends (``previous`` gives None) or ``steps`` nodes
    were looked at (8: room for the activations, reshapes, splits and up-samplings between a
    model's last layers and its outputs)."""
    for _ in range(steps):
        if node is None or is_layer(node):
            return node
        node = previous(node)
    return None
