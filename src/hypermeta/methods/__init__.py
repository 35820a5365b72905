"""Meta-RL methods as compositions, registered by name."""

from hypermeta.methods.base import Method
from hypermeta.methods.registry import METHODS, get_method

__all__ = ["Method", "METHODS", "get_method"]
