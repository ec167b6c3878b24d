"""Public building blocks, documented and unit-tested, usable in other models."""
from .affinity import affinity_loss, ideal_affinity_map  # noqa: F401  (CPNet; any pairwise prior)
