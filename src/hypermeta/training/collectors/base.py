"""The collector contract and the rules every collector shares, each written once.

A collector turns runs' states into rollouts and evaluations. It is driven by the learner's
pure functions (`LearnerSteps`: the agent, `learn`, `pretraining`) and never holds the
learner; the learner never asks what kind of environment it has:

    carry = collector.initial_carry(agent, key, num_envs)      # for Learner.init
    chunk = collector.compile_chunk(steps, parallel_runs)       # chunk(states, n) -> (states, metrics)
    collector.close()

The shared rules: the carry at a trial start and after a step (`first_carry`,
`next_carry`), the policy step (`act`, `sample_step`), the per-step record
(`step_record`), the keys of an update and of an evaluation (`update_keys`, `eval_keys`),
the returns of an evaluation (`add_returns`), the chunk means (`chunk_means`) and the run
axis (`vmap_runs`). The kinds are in `collectors.registry`.

The hidden state is carried across rollouts and reset only at trial boundaries:
`EnvCarry.reset` marks an observation that starts a new trial, and the encoder resets
its carry when it sees that flag, both while acting and when the update replays the
stored sequence from `Rollout.init_hidden`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from hypermeta.envs.base import Array, PRNGKey
from hypermeta.envs.trial import TrialState
from hypermeta.networks.agent import Agent, action_feature_dim
from hypermeta.training import conditioning
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.experience import EnvCarry, Rollout, encoder_inputs
from hypermeta.training.run_state import RunState


@dataclass(frozen=True)
class LearnerSteps:
    """What a collector needs of the learner: its agent and two pure functions of a run's state."""

    agent: Agent
    learn: Callable[[RunState, Rollout, EnvCarry, PRNGKey], tuple[RunState, dict]]
    """The update from a collected rollout: (state, rollout, carry after it, key) -> (state, statistics)."""
    pretraining: Callable[[RunState], Array]
    """Whether the next update belongs to multi-task pre-training (the policy then reads the true task)."""


Evaluator = Callable[..., dict[str, dict[str, Any]]]
"""`evaluate(params, norms, seed, key=None)`: one run's policy (unstacked parameters) on fresh
trials: task set ("" for the first, else its name) -> {"returns": (trials, K), and for host
environments "successes": (trials, K)}. JAX environments draw with `key` (default
PRNGKey(seed)); host ones seed their evaluation envs with `seed`."""


class Collector(Protocol):
    """What the learner needs from a collector (see the module docstring)."""

    def initial_carry(self, agent: Agent, key: PRNGKey, num_envs: int) -> EnvCarry:
        """The carry a fresh run starts from."""

    def compile_chunk(self, steps: LearnerSteps, parallel_runs: int = 0) -> Callable:
        """`chunk(states, n) -> (states, metrics)`: n updates of every run (a leading run axis)
        through `steps.learn`, then one evaluation; metrics are chunk means."""

    def evaluator(self, steps: LearnerSteps) -> Evaluator:
        """A saved policy's evaluation on `eval_trials` fresh trials (`hypermeta eval`), the
        same deterministic play as the evaluation in `compile_chunk`'s chunks."""

    def close(self) -> None:
        """Release what the collector holds (host environments)."""


# --- the rules every collector shares ------------------------------------------------------


def first_carry(agent: Agent, trial_state: TrialState, obs: Array) -> EnvCarry:
    """Environments that all start a trial: no previous action or reward, a fresh encoder carry."""
    batch = obs.shape[:-1]
    return EnvCarry(
        trial_state=trial_state, obs=obs,
        prev_action=jnp.zeros((*batch, action_feature_dim(agent.action_space))),
        prev_reward=jnp.zeros(batch), reset=jnp.ones(batch, bool), hidden=agent.initial_carry(batch),
    )


def next_carry(trial_state: TrialState, obs: Array, a_feat: Array, reward: Array, done: Array, hidden: Any) -> EnvCarry:
    """The carry after a step: the encoder's previous action and reward are zeros where a
    trial has just ended (`done`), and the next observation is marked as a trial start."""
    return EnvCarry(
        trial_state=trial_state, obs=obs,
        prev_action=jnp.where(done[..., None], 0.0, a_feat),
        prev_reward=jnp.where(done, 0.0, reward),
        reset=done, hidden=hidden,
    )


def act(agent: Agent, params, norms: Normalizers, carry: EnvCarry,
        use_task: Array | bool = False) -> tuple[Any, Array, Any, Array]:
    """Encoder step and policy for the current observation; returns (hidden, latent, dist, value).

    `use_task`: condition on the true task (multi-task pre-training) instead of the latent.
    """
    hidden, latent = agent.encode(params, carry.hidden, encoder_inputs(carry))
    dist, value = conditioning.policy(agent, params, norms, carry.obs, latent, carry.trial_state.task, use_task)
    return hidden, latent, dist, value


def sample_step(agent: Agent, params, norms: Normalizers, carry: EnvCarry, key: PRNGKey,
                use_task: Array | bool = False) -> tuple[Any, Array, Array, Array, Array]:
    """A training step's action: (hidden, latent, sampled action, its log-prob, value). The
    key's second half is left to the environment (JAX environments step with it)."""
    act_key, _ = jax.random.split(key)
    hidden, latent, dist, value = act(agent, params, norms, carry, use_task)
    action = dist.sample(act_key)
    return hidden, latent, action, dist.log_prob(action), value


def step_record(carry: EnvCarry, action: Array, log_prob: Array, value: Array, latent: Array, reward: Array,
                done: Array, info: dict) -> dict[str, Array]:
    """One step of a `Rollout` (every field but `init_hidden` and `last_value`)."""
    return dict(
        obs=carry.obs, prev_action=carry.prev_action, prev_reward=carry.prev_reward, reset=carry.reset,
        action=action, log_prob=log_prob, value=value, reward=reward, done=done, timeout=info["timeout"],
        task=info["task"], episode=info["episode"], latent=latent, next_obs=info["next_obs"],
        cell=info.get("cell", jnp.zeros_like(info["episode"])),
        cell_hit=info.get("cell_hit", jnp.zeros_like(done)),
    )


def update_keys(key: PRNGKey, num_steps: int) -> tuple[PRNGKey, Array, PRNGKey]:
    """(the run's next key, one key per collected step, the update's key)."""
    key, collect_key, update_key = jax.random.split(key, 3)
    return key, jax.random.split(collect_key, num_steps), update_key


def eval_keys(key: PRNGKey) -> tuple[PRNGKey, PRNGKey]:
    """(the run's next key, the evaluation's key) after a chunk's updates."""
    key, eval_key = jax.random.split(key)
    return key, eval_key


def add_returns(returns: Array, active: Array, episode: Array, reward: Array, done: Array, xp=jnp):
    """Evaluation: add each active trial's reward to its episode's return (returns (n, K));
    a trial stops counting after its last step. `xp`: jnp, or numpy on the host."""
    k = returns.shape[-1]
    returns = returns + (xp.arange(k) == episode[:, None]) * (reward * active)[:, None]
    return returns, active & ~done


def chunk_means(totals: dict, num_updates: Array | int) -> dict:
    """The chunk's metrics: every training statistic averaged over its updates."""
    return jax.tree.map(lambda t: t / jnp.maximum(num_updates, 1), totals)


def vmap_runs(fn: Callable) -> Callable:
    """`jax.vmap(fn)` over a leading run axis, except that a single run is not vmapped.

    A run axis of size 1 turns every matmul into a batched dot_general, which XLA:CPU runs
    off its GEMM fast path: one RNN+HN run trained 1.3x slower and compiled 1.6x longer
    vmapped than squeezed (benchmarks/throughput.py). The results agree to float rounding.
    """

    def mapped(*args):
        if jax.tree.leaves(args)[0].shape[0] != 1:
            return jax.vmap(fn)(*args)
        out = fn(*jax.tree.map(lambda x: x[0], args))
        return jax.tree.map(lambda x: x[None], out)

    return mapped
