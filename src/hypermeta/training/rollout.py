"""Collecting experience: the collector contract, its shared rules, and the JAX collector.

A collector turns a run's state into rollouts and evaluations; the learner
(`training.learner`) receives one and never asks what kind of environment it has:

    carry = collector.initial_carry(agent, key, num_envs)    # for Learner.init
    chunk = collector.compile_chunk(learner, parallel_runs)   # chunk(states, n) -> (states, metrics)
    collector.close()

`JaxCollector` (here) steps pure JAX environments inside one compiled program;
`training.host.HostCollector` steps gymnasium environments in Python. Both use the
rules below, each written once: the carry at a trial start and after a step
(`first_carry`, `next_carry`; the carry and rollout types are `training.experience`'s), the
policy step (`act`), the per-step record (`step_record`), the keys of an update and of
an evaluation (`update_keys`, `eval_keys`), the returns of an evaluation (`add_returns`)
and the chunk means (`chunk_means`). `make_collector` picks a collector by the
environment's type; a new kind of environment registers its own.

The hidden state is carried across rollouts and reset only at trial boundaries:
`EnvCarry.reset` marks an observation that starts a new trial, and the encoder resets
its carry when it sees that flag, both while acting and when the update replays the
stored sequence from `Rollout.init_hidden`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import singledispatch
from typing import TYPE_CHECKING, Any, Protocol

import jax
import jax.numpy as jnp

from hypermeta.config import TrainConfig
from hypermeta.envs.base import Array, Environment, PRNGKey
from hypermeta.envs.trial import TrialState, TrialWrapper
from hypermeta.networks.agent import Agent, action_feature_dim, action_features
from hypermeta.training import conditioning
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.experience import EnvCarry, Rollout, encoder_inputs

if TYPE_CHECKING:  # the learner calls collectors; collectors only read it
    from hypermeta.training.learner import Learner, RunState


class Collector(Protocol):
    """What the learner needs from a collector (see the module docstring)."""

    def initial_carry(self, agent: Agent, key: PRNGKey, num_envs: int) -> EnvCarry:
        """The carry a fresh run starts from."""

    def compile_chunk(self, learner: Learner, parallel_runs: int = 0) -> Callable:
        """`chunk(states, n) -> (states, metrics)`: n updates of every run (a leading run axis)
        through `learner.learn`, then one evaluation; metrics are chunk means."""

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


# --- the JAX collector ---------------------------------------------------------------------


@singledispatch
def make_collector(env: Any, wrapper: TrialWrapper, cfg: TrainConfig) -> Collector:
    """The collector of an environment, by its type: `JaxCollector` for pure JAX environments;
    other kinds register theirs (`training.host` for gymnasium environments)."""
    raise TypeError(f"no collector for {type(env).__name__}: register one with make_collector.register")


class JaxCollector:
    """Pure JAX environments: rollouts are `lax.scan`s and a chunk of updates is one program."""

    def __init__(self, wrapper: TrialWrapper, cfg: TrainConfig):
        self.wrapper, self.cfg = wrapper, cfg

    def initial_carry(self, agent: Agent, key: PRNGKey, num_envs: int) -> EnvCarry:
        """Fresh trials in `num_envs` environments."""
        obs, trial_state = jax.vmap(self.wrapper.reset)(jax.random.split(key, num_envs))
        return first_carry(agent, trial_state, obs)

    def env_step(self, key: PRNGKey, carry: EnvCarry, hidden: Any, action: Array) -> tuple[EnvCarry, Array, Array, dict]:
        """Step every environment and build the next carry; returns (carry, reward, done, info)."""
        num_envs = carry.obs.shape[0]
        obs, trial_state, reward, done, info = jax.vmap(self.wrapper.step)(
            jax.random.split(key, num_envs), carry.trial_state, action)
        a_feat = action_features(self.wrapper.action_space, action)
        return next_carry(trial_state, obs, a_feat, reward, done, hidden), reward, done, info

    def collect(self, agent: Agent, params, norms: Normalizers, carry: EnvCarry, step_keys: Array,
                use_task: Array | bool = False) -> tuple[EnvCarry, Rollout]:
        """Act once per key of `step_keys` with sampled actions."""

        def step(carry: EnvCarry, key: PRNGKey):
            hidden, latent, action, log_prob, value = sample_step(agent, params, norms, carry, key, use_task)
            following, reward, done, info = self.env_step(jax.random.split(key)[1], carry, hidden, action)
            return following, step_record(carry, action, log_prob, value, latent, reward, done, info)

        final, records = jax.lax.scan(step, carry, step_keys)
        _, _, _, last_value = act(agent, params, norms, final, use_task)
        return final, Rollout(**records, init_hidden=carry.hidden, last_value=last_value)

    def evaluate(self, agent: Agent, params, norms: Normalizers, key: PRNGKey) -> dict[str, Array]:
        """Mean return of each episode of a trial, (K,), over `eval_trials` fresh tasks.

        Deterministic actions; the hidden state starts at the prior and is never
        reset inside the trial. The meta-episode return is the sum of this vector.
        The meta-policy is evaluated even during pre-training (the reference does so
        too); only the multi-task oracle reads the true task.
        """
        episode_returns = self.evaluate_trials(agent, params, norms, key)["returns"].mean(axis=0)
        return {"episode_returns": episode_returns, "meta_episode_return": episode_returns.sum()}

    def evaluate_trials(self, agent: Agent, params, norms: Normalizers, key: PRNGKey, num_trials: int | None = None,
                        record: bool = False) -> dict[str, Any]:
        """The evaluation of `evaluate`, per trial: "returns" (trials, K), one trial in each of
        `num_trials` (default `eval_trials`) environments. `record`: also "steps", every step's
        (T, trials, ...) trial state before the step, observation, action, latent, reward,
        done, whether it counts (`active`: the trial has not ended) and the env's info, for
        pictures of the behaviour (`hypermeta eval --render`)."""
        n, k = num_trials or self.cfg.eval_trials, self.wrapper.episodes_per_trial
        reset_key, run_key = jax.random.split(key)
        carry = self.initial_carry(agent, reset_key, n)

        def step(loop, key):
            carry, active, returns = loop
            hidden, latent, dist, _ = act(agent, params, norms, carry)
            action = dist.mode()
            following, reward, done, info = self.env_step(key, carry, hidden, action)
            returns, still = add_returns(returns, active, info["episode"], reward, done)
            seen = (dict(trial_state=carry.trial_state, obs=carry.obs, action=action, latent=latent, reward=reward,
                         done=done, active=active, info=info) if record else None)
            return (following, still, returns), seen

        init = (carry, jnp.ones((n,), bool), jnp.zeros((n, k)))
        (_, _, returns), steps = jax.lax.scan(step, init, jax.random.split(run_key, self.wrapper.max_trial_steps))
        return {"returns": returns, **({"steps": steps} if record else {})}

    def train_update(self, learner: Learner, state: RunState) -> tuple[RunState, dict]:
        """Collect one rollout and update on it."""
        key, step_keys, update_key = update_keys(state.key, self.cfg.ppo.num_steps)
        carry, rollout = self.collect(learner.agent, state.params, state.norms, state.carry, step_keys,
                                      use_task=learner.pretraining(state))
        return learner.learn(state.replace(key=key), rollout, carry, update_key)

    def train_chunk(self, learner: Learner, state: RunState, num_updates: int | Array) -> tuple[RunState, dict]:
        """`num_updates` updates, then one evaluation; metrics are chunk means.

        `num_updates` may be a traced integer: one compiled program serves every chunk
        length, so the shorter last chunk of a run does not compile a second program.
        """
        _, stats_shape = jax.eval_shape(lambda s: self.train_update(learner, s), state)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), stats_shape)

        def body(_, loop):
            state, totals = loop
            state, stats = self.train_update(learner, state)
            return state, jax.tree.map(jnp.add, totals, stats)

        state, totals = jax.lax.fori_loop(0, num_updates, body, (state, zeros))
        key, eval_key = eval_keys(state.key)
        metrics = {**chunk_means(totals, num_updates), **self.evaluate(learner.agent, state.params, state.norms, eval_key)}
        return state.replace(key=key), metrics

    def compile_chunk(self, learner: Learner, parallel_runs: int = 0) -> Callable:
        """`train_chunk` over a leading run axis, jitted (donating the old state).

        `parallel_runs` runs are vmapped side by side and the groups follow one another
        (`lax.map`); 0 means all runs side by side. Call it as `chunk(states, num_updates)`;
        the same number of updates applies to every run.
        """

        def chunk(states, num_updates: Array):
            runs = jax.tree.leaves(states)[0].shape[0]
            one = lambda s: self.train_chunk(learner, s, num_updates)  # noqa: E731
            side_by_side = runs if parallel_runs <= 0 else min(parallel_runs, runs)
            if side_by_side == runs:
                return vmap_runs(one)(states)
            if side_by_side == 1:  # one run at a time, unbatched (see vmap_runs)
                return jax.lax.map(one, states)
            return jax.lax.map(one, states, batch_size=side_by_side)

        return jax.jit(chunk, donate_argnums=0)

    def close(self) -> None:
        """Nothing to release: the environments are pure functions."""


@make_collector.register
def _(env: Environment, wrapper: TrialWrapper, cfg: TrainConfig) -> JaxCollector:
    return JaxCollector(wrapper, cfg)
