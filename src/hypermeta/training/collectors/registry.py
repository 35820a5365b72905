"""Which collector steps which kind of environment: one table, read by the learner.

* `Environment` (pure JAX: the grid-worlds, MuJoCo in MJX, gymnax, XLand-MiniGrid):
  `JaxCollector`, inside the compiled program;
* `HostEnvironment` (gymnasium vector envs: C MuJoCo, Meta-World, any gymnasium env):
  `HostCollector`, stepped in Python.

A new kind of environment registers its collector with `register_collector`; the kind
is looked up along the environment's class hierarchy, nearest class first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypermeta.config import TrainConfig
from hypermeta.envs.base import Environment
from hypermeta.envs.host import HostEnvironment
from hypermeta.envs.trial import TrialWrapper
from hypermeta.errors import UsageError
from hypermeta.training.collectors.base import Collector
from hypermeta.training.collectors.host_collector import HostCollector
from hypermeta.training.collectors.jax_collector import JaxCollector

CollectorFactory = Callable[[Any, TrialWrapper, TrainConfig], Collector]

COLLECTORS: dict[type, CollectorFactory] = {
    Environment: lambda env, wrapper, cfg: JaxCollector(wrapper, cfg),
    HostEnvironment: HostCollector,
}


def register_collector(kind: type, factory: CollectorFactory, replace: bool = False) -> None:
    """Collect rollouts of environments of class `kind` (and its subclasses) with
    `factory(env, trial_wrapper, cfg)`, an object with the `Collector` methods."""
    if kind in COLLECTORS and not replace:
        raise UsageError(f"a collector for {kind.__name__} is already registered; pass replace=True to replace it")
    COLLECTORS[kind] = factory


def make_collector(env: Any, wrapper: TrialWrapper, cfg: TrainConfig) -> Collector:
    """The collector of an environment, by its class: the nearest registered class along its
    hierarchy, else the first registered class it is an instance of (abstract base classes'
    virtual subclasses)."""
    kind = next((k for k in type(env).__mro__ if k in COLLECTORS), None)
    kind = next((k for k in COLLECTORS if isinstance(env, k)), None) if kind is None else kind
    if kind is None:
        raise TypeError(f"no collector for {type(env).__name__}: register one with register_collector")
    return COLLECTORS[kind](env, wrapper, cfg)
