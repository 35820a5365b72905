"""A plug-in as another package would write it (tests/test_plugins.py): a tiny JAX
environment, a sequence model with its own config, an entry point, and broken variants.

Importable as `plugin_pkg.tiny_env` with tests/data/ on the path (PYTHONPATH for subprocesses)."""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
from flax import struct

from hypermeta.envs.base import Array, Box, Discrete, Environment, PRNGKey
from hypermeta.envs.host import JaxOnHost
from hypermeta.networks.sequence import SequenceModel


@struct.dataclass
class BanditState:
    t: Array  # int32 ()
    last: Array  # float32 (): the last reward


@dataclass(frozen=True)
class TwoArmedBandit(Environment):
    """Two arms, one pays 1 and the other 0; the task says which (0. or 1.). Episodes of 4
    pulls, 2 per trial: the first pull of a trial is a guess, the rest can be right."""

    max_episode_steps: int = 4
    episodes_per_trial: int = 2
    obs_dim: int = 2

    @property
    def observation_space(self) -> Box:
        return Box(0.0, 1.0, (2,))  # [last reward, fraction of the episode done]

    @property
    def action_space(self) -> Discrete:
        return Discrete(2)

    @property
    def task_dim(self) -> int:
        return 1

    def sample_task(self, key: PRNGKey) -> Array:
        return jax.random.bernoulli(key).astype(jnp.float32)[None]

    def reset(self, key: PRNGKey, task: Array) -> tuple[Array, BanditState]:
        return jnp.zeros((self.obs_dim,), jnp.float32), BanditState(jnp.zeros((), jnp.int32), jnp.zeros(()))

    def step(self, key: PRNGKey, state: BanditState, action: Array, task: Array):
        reward = (action == task[0].astype(jnp.int32)).astype(jnp.float32)
        t = state.t + 1
        obs = jnp.stack([reward, t / self.max_episode_steps]).astype(jnp.float32)
        if self.obs_dim != 2:  # WrongShapes: declares (2,), returns (obs_dim,)
            obs = jnp.concatenate([obs, jnp.zeros((self.obs_dim - 2,), jnp.float32)])
        return obs, BanditState(t, reward), reward, t >= self.max_episode_steps, {}


def make() -> TwoArmedBandit:
    """A factory, as `--env plugin_pkg.tiny_env:make` names it."""
    return TwoArmedBandit()


def host() -> JaxOnHost:
    """The bandit as a host (gymnasium) environment."""
    return JaxOnHost(TwoArmedBandit())


@dataclass(frozen=True)
class ElmanConfig:
    features: int = 16
    """Hidden units."""


class Elman(SequenceModel):
    """tanh(W x + U h): the smallest recurrent sequence model, with its own config."""

    features: int = 16
    config_class = ElmanConfig

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Array:
        return jnp.zeros((*batch_shape, self.features), jnp.float32)

    @nn.compact
    def step(self, carry: Array, x: Array) -> tuple[Array, Array]:
        h = jnp.tanh(nn.Dense(self.features, name="i")(x) + nn.Dense(self.features, use_bias=False, name="h")(carry))
        return h, h


def register() -> None:
    """The entry point of the plug-in distribution the tests install on a temporary path."""
    from hypermeta.plugins import register_env, register_sequence_model

    register_env("my-env", TwoArmedBandit, reference_returns={"optimal": 7.0})
    register_sequence_model("elman", Elman)


# --------------------------------------------------------------------------- broken plug-ins


def raising() -> TwoArmedBandit:
    raise RuntimeError("no licence for the simulator\nsecond line of the traceback text")


class NoTasks:
    """Steps like an environment, but has no task sampler."""

    def reset(self, key, task):
        return jnp.zeros((2,)), None

    def step(self, key, state, action, task):
        return jnp.zeros((2,)), None, 0.0, True, {}


@dataclass(frozen=True)
class AbstractNoTasks(Environment):
    """An `Environment` subclass that forgot `sample_task`: cannot be instantiated."""

    max_episode_steps: int = 4
    episodes_per_trial: int = 1

    observation_space = Box(0.0, 1.0, (2,))
    action_space = Discrete(2)
    task_dim = 1

    def reset(self, key, task):
        return jnp.zeros((2,)), None

    def step(self, key, state, action, task):
        return jnp.zeros((2,)), None, jnp.zeros(()), jnp.ones((), bool), {}


@dataclass(frozen=True)
class HostWithoutTasks(JaxOnHost):
    """A host environment whose task envs are plain gymnasium envs: no `sample_task`."""

    def make_task_env(self, split: str, evaluation_index: int | None = None) -> gymnasium.Env:
        return gymnasium.Env()


def host_without_tasks() -> HostWithoutTasks:
    return HostWithoutTasks(TwoArmedBandit())


def wrong_shapes() -> TwoArmedBandit:
    return TwoArmedBandit(obs_dim=3)


class NotASequenceModel(nn.Module):
    features: int = 4


class NoStep(SequenceModel):
    features: int = 4

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Array:
        return jnp.zeros((*batch_shape, self.features))


class WideOutput(Elman):
    """Declares `features` units but outputs twice as many."""

    @nn.compact
    def step(self, carry: Array, x: Array) -> tuple[Array, Array]:
        h = jnp.tanh(nn.Dense(self.features)(jnp.concatenate([x, carry], axis=-1)))
        return h, jnp.concatenate([h, h], axis=-1)
