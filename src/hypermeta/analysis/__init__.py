"""Learning curves and reference lines."""
