"""The JAX collector: pure JAX environments stepped inside one compiled program.

Rollouts are `lax.scan`s over the vmapped environments; a chunk of updates is one
`fori_loop` followed by one evaluation, and runs are vmapped side by side (or mapped in
groups, `parallel_runs`). The rules it shares with other collectors are `collectors.base`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hypermeta.config import TrainConfig
from hypermeta.envs.base import Array, PRNGKey
from hypermeta.envs.trial import TrialWrapper
from hypermeta.networks.agent import Agent, action_features
from hypermeta.training.collectors.base import (
    Evaluator,
    LearnerSteps,
    act,
    add_returns,
    chunk_means,
    eval_keys,
    first_carry,
    next_carry,
    sample_step,
    step_record,
    update_keys,
    vmap_runs,
)
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.experience import EnvCarry, Rollout
from hypermeta.training.run_state import RunState


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

    def evaluator(self, steps: LearnerSteps) -> Evaluator:
        """`evaluate(params, norms, seed, key=None)`: `evaluate_trials`' returns of one run, jitted once."""
        fn = jax.jit(lambda p, n, k: self.evaluate_trials(steps.agent, p, n, k)["returns"])

        def evaluate(params: Any, norms: Normalizers, seed: int, key: PRNGKey | None = None) -> dict[str, dict]:
            return {"": {"returns": np.asarray(fn(params, norms, jax.random.PRNGKey(seed) if key is None else key))}}

        return evaluate

    def train_update(self, steps: LearnerSteps, state: RunState) -> tuple[RunState, dict]:
        """Collect one rollout and update on it."""
        key, step_keys, update_key = update_keys(state.key, self.cfg.ppo.num_steps)
        carry, rollout = self.collect(steps.agent, state.params, state.norms, state.carry, step_keys,
                                      use_task=steps.pretraining(state))
        return steps.learn(state.replace(key=key), rollout, carry, update_key)

    def train_chunk(self, steps: LearnerSteps, state: RunState, num_updates: int | Array) -> tuple[RunState, dict]:
        """`num_updates` updates, then one evaluation; metrics are chunk means.

        `num_updates` may be a traced integer: one compiled program serves every chunk
        length, so the shorter last chunk of a run does not compile a second program.
        """
        _, stats_shape = jax.eval_shape(lambda s: self.train_update(steps, s), state)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), stats_shape)

        def body(_, loop):
            state, totals = loop
            state, stats = self.train_update(steps, state)
            return state, jax.tree.map(jnp.add, totals, stats)

        state, totals = jax.lax.fori_loop(0, num_updates, body, (state, zeros))
        key, eval_key = eval_keys(state.key)
        metrics = {**chunk_means(totals, num_updates), **self.evaluate(steps.agent, state.params, state.norms, eval_key)}
        return state.replace(key=key), metrics

    def compile_chunk(self, steps: LearnerSteps, parallel_runs: int = 0) -> Callable:
        """`train_chunk` over a leading run axis, jitted (donating the old state).

        `parallel_runs` runs are vmapped side by side and the groups follow one another
        (`lax.map`); 0 means all runs side by side. Call it as `chunk(states, num_updates)`;
        the same number of updates applies to every run.
        """

        def chunk(states, num_updates: Array):
            runs = jax.tree.leaves(states)[0].shape[0]
            one = lambda s: self.train_chunk(steps, s, num_updates)  # noqa: E731
            side_by_side = runs if parallel_runs <= 0 else min(parallel_runs, runs)
            if side_by_side == runs:
                return vmap_runs(one)(states)
            if side_by_side == 1:  # one run at a time, unbatched (see vmap_runs)
                return jax.lax.map(one, states)
            return jax.lax.map(one, states, batch_size=side_by_side)

        return jax.jit(chunk, donate_argnums=0)

    def close(self) -> None:
        """Nothing to release: the environments are pure functions."""
