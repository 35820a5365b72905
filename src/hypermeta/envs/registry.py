"""Environment names -> constructors. A new environment is one module plus one line here."""

from __future__ import annotations

from typing import Callable

from hypermeta.envs.base import Environment
from hypermeta.envs.grid_world import GridWorld
from hypermeta.errors import UsageError

ENVIRONMENTS: dict[str, Callable[[], Environment]] = {
    "grid-world": lambda: GridWorld(),
    "grid-world-show": lambda: GridWorld(show="episode-start"),
    "grid-world-show-start-cell": lambda: GridWorld(show="start-cell"),
    "grid-world-dense": lambda: GridWorld(dense=True),
}

#: Environments of the paper that later issues add; named so errors can say so.
PLANNED = ("cheetah-dir", "cheetah-vel", "ant-dir", "walker-params", "mc-ls", "ml10")


def make_env(name: str) -> Environment:
    """Build the environment registered as `name`."""
    if name not in ENVIRONMENTS:
        if name in PLANNED:
            raise UsageError(
                f"environment {name!r} is part of the paper but not implemented yet; "
                f"available: {', '.join(ENVIRONMENTS)}"
            )
        raise UsageError(f"unknown environment {name!r}; choose one of: {', '.join(ENVIRONMENTS)}")
    return ENVIRONMENTS[name]()
