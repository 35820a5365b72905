"""A plug-in package: an environment and a sequence model that another package brings to
hypermeta through an entry point, without touching hypermeta's code.

Install it and its names work everywhere, the command line and Ray workers included:

    pip install -e examples/plugin_package
    hypermeta train --env two-armed-bandit --method rnn-hn --model.sequence elman

`pyproject.toml` declares `register` below in the entry-point group `hypermeta.plugins`;
hypermeta calls it once per process, the first time a name is not registered (or `--help`
lists the names). Without installing, the same objects are reachable by module path with the
folder on PYTHONPATH: `--env hypermeta_bandit:TwoArmedBandit --model.sequence hypermeta_bandit:Elman`.
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from hypermeta.envs.base import Array, Box, Discrete, Environment, PRNGKey
from hypermeta.networks.sequence import SequenceModel


@struct.dataclass
class BanditState:
    t: Array  # int32 (): pulls so far in this episode


@dataclass(frozen=True)
class TwoArmedBandit(Environment):
    """Two arms; one pays 1, the other 0, and the task (0. or 1.) says which. A trial is 2
    episodes of 4 pulls on one task: the first pull is a guess, every later one can be right
    (Bayes-optimal 0.5 + 7 = 7.5 per trial, random 4)."""

    max_episode_steps: int = 4
    episodes_per_trial: int = 2

    @property
    def observation_space(self) -> Box:
        return Box(0.0, 1.0, (2,))  # [the last reward, the fraction of the episode done]

    @property
    def action_space(self) -> Discrete:
        return Discrete(2)

    @property
    def task_dim(self) -> int:
        return 1

    def sample_task(self, key: PRNGKey) -> Array:
        return jax.random.bernoulli(key).astype(jnp.float32)[None]

    def reset(self, key: PRNGKey, task: Array) -> tuple[Array, BanditState]:
        return jnp.zeros((2,), jnp.float32), BanditState(jnp.zeros((), jnp.int32))

    def step(self, key: PRNGKey, state: BanditState, action: Array, task: Array):
        reward = (action == task[0].astype(jnp.int32)).astype(jnp.float32)
        t = state.t + 1
        obs = jnp.stack([reward, t / self.max_episode_steps]).astype(jnp.float32)
        return obs, BanditState(t), reward, t >= self.max_episode_steps, {}


def make() -> TwoArmedBandit:
    """A factory: `--env hypermeta_bandit:make` with this folder on PYTHONPATH."""
    return TwoArmedBandit()


@dataclass(frozen=True)
class ElmanConfig:
    """The Elman network's settings, set with `--model.sequence-options features=N`."""

    features: int = 16
    """Hidden units."""


class Elman(SequenceModel):
    """h' = tanh(W x + U h): the smallest recurrent sequence model, with its own config."""

    features: int = 16
    config_class = ElmanConfig

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Array:
        return jnp.zeros((*batch_shape, self.features), jnp.float32)

    @nn.compact
    def step(self, carry: Array, x: Array) -> tuple[Array, Array]:
        h = jnp.tanh(nn.Dense(self.features, name="i")(x) + nn.Dense(self.features, use_bias=False, name="h")(carry))
        return h, h


def register() -> None:
    """The entry point (pyproject.toml): registers this package's names with hypermeta."""
    import hypermeta

    hypermeta.register_env("two-armed-bandit", TwoArmedBandit, reference_returns={"Bayes-optimal": 7.5, "random": 4.0})
    hypermeta.register_sequence_model("elman", Elman)
