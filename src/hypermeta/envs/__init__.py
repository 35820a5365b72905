"""Pure-JAX meta-RL environments and the trial (meta-episode) wrapper."""

from hypermeta.envs.base import Box, Discrete, Environment
from hypermeta.envs.grid_world import GridWorld
from hypermeta.envs.registry import ENVIRONMENTS, make_env
from hypermeta.envs.trial import TrialState, TrialWrapper

__all__ = ["Box", "Discrete", "Environment", "GridWorld", "ENVIRONMENTS", "make_env", "TrialState", "TrialWrapper"]
