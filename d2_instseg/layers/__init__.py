"""Public building blocks, documented and unit-tested, usable in other models."""
from .lovasz import lovasz_grad, lovasz_hinge  # noqa: F401  (Spatial Embeddings; any mask IoU loss)
from .affinity import affinity_loss, ideal_affinity_map  # noqa: F401  (CPNet; any pairwise prior)
