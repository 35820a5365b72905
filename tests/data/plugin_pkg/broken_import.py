"""A plug-in module whose own import fails (a dependency it needs is not installed)."""

import not_a_real_dependency_of_hypermeta  # noqa: F401


def make():
    raise AssertionError("never reached")
