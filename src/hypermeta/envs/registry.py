"""Environment names -> constructors and the name of their family of settings.

A new environment of this package is one module plus one line here; another package's JAX
environments are one adapter module plus one line of `ADAPTERS` (`gymnax:NAME`,
`xland:ENV_ID`). Environments of your own need no edit here (`hypermeta.plugins`):
`hypermeta.plugins.register_env`, an installed plug-in (entry-point group
`hypermeta.plugins`, loaded when a name is not found), or the name `MODULE:FACTORY`
itself (`env_spec` imports it).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hypermeta.config import resolve_physics
from hypermeta.envs import gymnax_env, ml10, xland
from hypermeta.envs.ant_dir import AntDir
from hypermeta.envs.base import Environment, EnvironmentBase
from hypermeta.envs.grid_world import GridWorld
from hypermeta.envs.half_cheetah import HalfCheetah
from hypermeta.envs.host import HostEnvironment
from hypermeta.envs.mc_ls import MCLS
from hypermeta.envs.mjx_env import PHYSICS, MjxEnv
from hypermeta.envs.walker_params import WalkerParams
from hypermeta.errors import UsageError
from hypermeta.plugin_loading import import_object, is_import_name, load_entry_points, one_line


@dataclass(frozen=True)
class EnvSpec:
    make: Callable[[], EnvironmentBase]
    """A JAX `Environment`, or a `HostEnvironment` (gymnasium, stepped in Python)."""
    family: str
    """The family whose model / PPO / budget settings this environment uses: a key of
    `hypermeta.families.FAMILIES` ("grid-world", "mc-ls", "mc-ls-cnn", "cheetah", "ant",
    "walker", "ml10", "gymnax", "xland", "generic" or a registered one), so that environments
    do not depend on PPO settings."""
    reference_returns: dict[str, float]
    """Per-trial returns drawn on learning curves (name -> value)."""
    plugin: str = ""
    """Where a plug-in's environment came from (its registered name or MODULE:FACTORY), for
    error messages and the checks `hypermeta.validate` runs on plug-ins only; "" for this
    package's environments."""


_GRID_REFERENCE = {"Bayes-optimal": 37.21, "oracle": 44.29, "random": -4.66}
# Per trial of 2 episodes, from the rules (MCLS.optimal_return): optimal 2 x (0.1 + 16 x 0.6 + 4)
# = 2 x 13.7; navigating perfectly but ignoring the signal 2 x (13.7 - 3.5) = 2 x 10.2; uniform
# random actions 13.27 (measured over 16,384 trials, standard error 0.007: they pass ~12 rooms in
# the 199 actions an episode allows).
_MC_LS_REFERENCE = {"optimal": 27.4, "ignores signal": 20.4, "random": 13.27}
# MC-LSN has 10 rooms (the authors' MC-LSN-v0): optimal 2 x (0.1 + 10 x 0.6 + 4) = 2 x 10.1, ignoring
# the signal 2 x 6.6; random 12.14 (16,384 trials, s.e. 0.04; some random walks reach the end tile).
_MC_LSN_REFERENCE = {"optimal": 20.2, "ignores signal": 13.2, "random": 12.14}

ENVIRONMENTS: dict[str, EnvSpec] = {
    "grid-world": EnvSpec(lambda: GridWorld(), "grid-world", _GRID_REFERENCE),
    "grid-world-show": EnvSpec(lambda: GridWorld(show="episode-start"), "grid-world", {"oracle": 44.29}),
    "grid-world-show-start-cell": EnvSpec(lambda: GridWorld(show="start-cell"), "grid-world", {"oracle": 44.29}),
    "grid-world-dense": EnvSpec(lambda: GridWorld(dense=True), "grid-world", {"Bayes-optimal": 35.48, "oracle": 38.13}),
    "mc-ls": EnvSpec(lambda: MCLS(), "mc-ls", _MC_LS_REFERENCE),
    # The authors' MC-LSN-v0: 10 rooms, views + N(0, 0.05^2) noise clipped to [-1, 1].
    "mc-lsn": EnvSpec(lambda: MCLS(rooms=10, noise_std=0.05), "mc-ls", _MC_LSN_REFERENCE),
    # Hidden signal: the first episode's turn is a guess (10.2 on average), the second can be right.
    "mc-lsh": EnvSpec(lambda: MCLS(hidden_signal=True), "mc-ls", {"Bayes-optimal": 23.9, "random": 13.27}),
    "mc-ls-42": EnvSpec(lambda: MCLS(resolution=42), "mc-ls-cnn", _MC_LS_REFERENCE),
    "cheetah-dir": EnvSpec(lambda: HalfCheetah(task="direction"), "cheetah", {}),
    "cheetah-vel": EnvSpec(lambda: HalfCheetah(task="velocity"), "cheetah", {}),
    "ant-dir": EnvSpec(lambda: AntDir(), "ant", {}),
    # The authors' variant: the task +-1 is an angle in radians (directions at +-57 degrees).
    "ant-dir-angle": EnvSpec(lambda: AntDir(directions="angle"), "ant", {}),
    "walker-params": EnvSpec(lambda: WalkerParams(), "walker", {}),
    # Host-side (gymnasium): needs the optional extra hypermeta[metaworld].
    "ml10": EnvSpec(lambda: ml10.ML10(), "ml10", {}),
}




@dataclass(frozen=True)
class AdapterSpec:
    """Another package's JAX environments, named `PREFIX:NAME[:OPTIONS]` (`envs/adapter_names.py`)."""

    module: ModuleType
    """Has `check(full, rest)` (raises the UsageError of a bad name), `make(full, rest)` and
    `reference_returns(full, rest)`; `rest` is the name after `PREFIX:`."""
    family: str
    usage: str
    """How its names are spelled, for --help and the unknown-environment error."""


ADAPTERS: dict[str, AdapterSpec] = {
    # Optional extras hypermeta[gymnax] and hypermeta[xland].
    "gymnax": AdapterSpec(gymnax_env, "gymnax", "gymnax:NAME[:episodes=K,PARAM=LOW..HIGH] (e.g. gymnax:MetaMaze-misc)"),
    "xland": AdapterSpec(xland, "xland", "xland:ENV_ID[:benchmark=NAME|PATH,episodes=K,max-steps=N,view=V] "
                                         "(e.g. xland:XLand-MiniGrid-R1-9x9)"),
}


PLUGIN_FAMILY = "generic"
"""The family of a plug-in environment that names none (`hypermeta.families.GENERIC`)."""


def environment_names() -> list[str]:
    """Every registered name (installed plug-ins' included: their entry points are loaded
    here, so --help lists them), then the adapters' and plug-ins' name patterns."""
    load_entry_points(raise_failures=False)  # a listing (--help) lists what loaded; lookups name the broken
    return [*ENVIRONMENTS, *(a.usage for a in ADAPTERS.values()), "MODULE:FACTORY (your own, hypermeta.plugins)"]


def env_spec(name: str) -> EnvSpec:
    """The registry entry of `name` (an adapter's name resolved and checked; MODULE:FACTORY
    imported; installed plug-ins loaded if the name is not registered yet), or a
    UsageError listing what is allowed."""
    if name in ENVIRONMENTS:
        return ENVIRONMENTS[name]
    prefix, sep, rest = name.partition(":")
    if sep and prefix in ADAPTERS:
        adapter = ADAPTERS[prefix]
        adapter.module.check(name, rest)
        return EnvSpec(functools.partial(adapter.module.make, name, rest), adapter.family,
                       adapter.module.reference_returns(name, rest))
    if is_import_name(name):
        found = import_object(name, "--env")
        if found is not None:
            return _imported_spec(name, found)
    elif load_entry_points() and name in ENVIRONMENTS:
        return ENVIRONMENTS[name]
    raise UsageError(f"unknown environment {name!r}; choose one of: {', '.join(environment_names())}")


def _imported_spec(name: str, found: Any) -> EnvSpec:
    """The entry of a MODULE:FACTORY name: `found` is a callable returning the environment, or
    an object with `make()` and optionally `family` and `reference_returns` attributes."""
    make = getattr(found, "make", None)
    if callable(make) and not isinstance(found, type):
        family = getattr(found, "family", None) or PLUGIN_FAMILY
        return EnvSpec(checked_factory(name, make), family, dict(getattr(found, "reference_returns", None) or {}), name)
    if not callable(found):
        raise UsageError(f"environment plug-in {name!r}: {type(found).__name__} is neither callable nor has make()")
    return EnvSpec(checked_factory(name, found), PLUGIN_FAMILY, {}, name)


def checked_factory(label: str, make: Callable[[], Any]) -> Callable[[], EnvironmentBase]:
    """`make` as a plug-in's factory: an exception it raises, or an object that is no
    environment, becomes a one-line UsageError naming the plug-in `label`."""

    def factory() -> EnvironmentBase:
        try:
            env = make()
        except UsageError as e:
            raise UsageError(f"environment plug-in {label!r}: {e}") from e
        except Exception as e:
            if isinstance(e, TypeError) and "sample_task" in str(e):  # an Environment subclass without it
                raise UsageError(f"environment plug-in {label!r}: {_NO_SAMPLER}; its factory raised {one_line(e)}") from e
            raise UsageError(f"environment plug-in {label!r}: its factory raised {one_line(e)}") from e
        return check_environment(label, env)

    return factory


_NO_SAMPLER = "no task sampler: a JAX environment defines sample_task(key) -> task vector (hypermeta.envs.base.Environment)"


def check_environment(label: str, env: Any) -> EnvironmentBase:
    """`env` if it is a JAX `Environment` or a `HostEnvironment`, else a one-line UsageError
    saying what is missing (a task sampler first: without one there are no tasks to meta-learn)."""
    if isinstance(env, (Environment, HostEnvironment)):
        return env
    kind = type(env).__name__
    if callable(getattr(env, "step", None)) and not callable(getattr(env, "sample_task", None)):
        raise UsageError(f"environment plug-in {label!r}: {kind} has {_NO_SAMPLER}")
    raise UsageError(f"environment plug-in {label!r}: its factory returned {kind}, not a hypermeta.envs.base."
                     f"Environment (JAX) or a hypermeta.envs.host.HostEnvironment (gymnasium)")


def make_env(name: str, physics: str = "auto") -> EnvironmentBase:
    """Build the environment registered as `name`. `physics` ("auto", "mjx" or "c") sets
    the MuJoCo tasks' physics backend (`MjxEnv.physics`; "auto": C on a CPU, MJX
    elsewhere); the other environments ignore it."""
    if physics != "auto" and physics not in PHYSICS:
        raise UsageError(f"unknown MuJoCo physics {physics!r}; allowed: 'auto', {', '.join(map(repr, PHYSICS))}")
    env = env_spec(name).make()
    if isinstance(env, MjxEnv):
        env = dataclasses.replace(env, physics=resolve_physics(physics))
    return env
