"""hypermeta: meta-RL with recurrent hypernetworks (Beck et al., NeurIPS 2023) in JAX."""

__version__ = "0.1.0"
