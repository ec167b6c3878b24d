"""Public building blocks, documented and unit-tested, usable in other models."""
