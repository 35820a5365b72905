"""One run's training as pure functions of a `RunState`, so runs can be vmapped.

    state = learner.init(seed, lr)
    state, stats = learner.train_update(state)      # collect a rollout, PPO update
    returns = learner.evaluate(state)               # fresh tasks, deterministic
    state, metrics = learner.train_chunk(state, n)  # n updates then one evaluation

`Learner.compile_chunk()` returns `train_chunk` jitted and vmapped over a leading
run axis: every (seed, lr) pair trains in one compiled program.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from hypermeta.config import TrainConfig
from hypermeta.envs.base import Array
from hypermeta.envs.registry import make_env
from hypermeta.envs.trial import TrialWrapper
from hypermeta.methods.registry import get_method
from hypermeta.networks.agent import Agent
from hypermeta.training import ppo
from hypermeta.training.normalize import RunningMeanStd
from hypermeta.training.rollout import EnvCarry, Rollout, act, collect, env_step, reset_carry


@struct.dataclass
class RunState:
    """Everything one run needs to continue; checkpointed as is."""

    params: Any
    opt_state: Any
    obs_rms: RunningMeanStd
    reward_scaler: ppo.RewardScaler
    carry: EnvCarry
    key: Array
    lr: Array  # base learning rate of the run
    update: Array  # int32: updates done so far


class Learner:
    """Static pieces of a training configuration (env, agent, optimizer) and the pure steps."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        env = make_env(cfg.env)
        self.wrapper = TrialWrapper(env, env.episodes_per_trial)
        self.method = get_method(cfg.method)
        self.agent = Agent(cfg.model, self.method, self.wrapper.action_space, self.wrapper.observation_space.shape[0])
        self.tx = ppo.make_optimizer(cfg.ppo)

    def init(self, seed: Array, lr: Array) -> RunState:
        """A fresh run. The same seed gives the same network and environments for every lr."""
        init_key, env_key, run_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        num_envs = self.cfg.ppo.num_envs
        carry = reset_carry(self.wrapper, self.agent, env_key, num_envs)
        params = self.agent.init(
            init_key, carry.hidden, carry.prev_action, carry.prev_reward, carry.obs, carry.reset
        )
        obs_dim = self.wrapper.observation_space.shape[0]
        return RunState(
            params=params,
            opt_state=self.tx.init(params),
            obs_rms=RunningMeanStd.create((obs_dim,)),
            reward_scaler=ppo.RewardScaler.create(num_envs),
            carry=carry,
            key=run_key,
            lr=jnp.asarray(lr, jnp.float32),
            update=jnp.zeros((), jnp.int32),
        )

    def current_lr(self, state: RunState) -> Array:
        if self.cfg.ppo.lr_schedule == "linear":
            return state.lr * (1.0 - state.update / max(self.cfg.num_updates, 1))
        return state.lr

    def learn(self, state: RunState, rollout: Rollout, carry: EnvCarry, key: Array) -> tuple[RunState, dict]:
        """The PPO update from a collected rollout (shared with host-side collectors)."""
        cfg = self.cfg.ppo
        reward_scaler, scaled = state.reward_scaler.scale(rollout.reward, rollout.done, cfg.gamma, cfg.reward_clip)
        params, opt_state, stats = ppo.update(
            self.agent, self.tx, cfg, state.params, state.opt_state, state.obs_rms,
            rollout, scaled, self.current_lr(state), key, grad_info=self.cfg.grad_info,
        )
        # Observation statistics change only between updates, so the log-probs stored
        # while acting match those recomputed in the first PPO epoch exactly.
        obs_rms = state.obs_rms.update(rollout.obs)
        stats["train_reward"] = jnp.mean(rollout.reward)
        new_state = state.replace(
            params=params, opt_state=opt_state, obs_rms=obs_rms, reward_scaler=reward_scaler,
            carry=carry, update=state.update + 1,
        )
        return new_state, stats

    def train_update(self, state: RunState) -> tuple[RunState, dict]:
        """Collect one rollout and update on it."""
        key, collect_key, update_key = jax.random.split(state.key, 3)
        carry, rollout = collect(
            self.wrapper, self.agent, state.params, state.obs_rms, state.carry, collect_key, self.cfg.ppo.num_steps
        )
        return self.learn(state.replace(key=key), rollout, carry, update_key)

    def evaluate(self, params, obs_rms: RunningMeanStd, key: Array) -> Array:
        """Mean return of each episode of a trial, (K,), over `eval_trials` fresh tasks.

        Deterministic actions; the hidden state starts at the prior and is never
        reset inside the trial. The meta-episode return is the sum of this vector.
        """
        n, k = self.cfg.eval_trials, self.wrapper.episodes_per_trial
        reset_key, run_key = jax.random.split(key)
        carry = reset_carry(self.wrapper, self.agent, reset_key, n)

        def step(loop, key):
            carry, active, returns = loop
            hidden, dist, _ = act(self.agent, params, obs_rms, carry)
            carry, reward, done, info = env_step(self.wrapper, key, carry, hidden, dist.mode())
            returns = returns + jax.nn.one_hot(info["episode"], k) * (reward * active)[:, None]
            return (carry, active & ~done, returns), None

        init = (carry, jnp.ones((n,), bool), jnp.zeros((n, k)))
        (_, _, returns), _ = jax.lax.scan(step, init, jax.random.split(run_key, self.wrapper.max_trial_steps))
        return returns.mean(axis=0)

    def train_chunk(self, state: RunState, num_updates: int | Array) -> tuple[RunState, dict]:
        """`num_updates` updates, then one evaluation; metrics are chunk means.

        `num_updates` may be a traced integer: one compiled program serves every chunk
        length, so the shorter last chunk of a run does not compile a second program.
        """
        _, stats_shape = jax.eval_shape(self.train_update, state)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), stats_shape)

        def body(_, loop):
            state, totals = loop
            state, stats = self.train_update(state)
            return state, jax.tree.map(jnp.add, totals, stats)

        state, totals = jax.lax.fori_loop(0, num_updates, body, (state, zeros))
        key, eval_key = jax.random.split(state.key)
        episode_returns = self.evaluate(state.params, state.obs_rms, eval_key)
        metrics = jax.tree.map(lambda t: t / jnp.maximum(num_updates, 1), totals)
        metrics["episode_returns"] = episode_returns
        metrics["meta_episode_return"] = episode_returns.sum()
        return state.replace(key=key), metrics

    def compile_chunk(self, parallel_runs: int = 0):
        """`train_chunk` over a leading run axis, jitted (donating the old state).

        `parallel_runs` runs are vmapped side by side and the groups follow one another
        (`lax.map`); 0 means all runs side by side. Call it as `chunk(states, num_updates)`;
        the same number of updates applies to every run.
        """

        def chunk(states: RunState, num_updates: Array) -> tuple[RunState, dict]:
            runs = jax.tree.leaves(states)[0].shape[0]
            if parallel_runs <= 0 or parallel_runs >= runs:
                return jax.vmap(self.train_chunk, in_axes=(0, None))(states, num_updates)
            return jax.lax.map(lambda s: self.train_chunk(s, num_updates), states, batch_size=parallel_runs)

        return jax.jit(chunk, donate_argnums=0)

    def init_runs(self, seeds: list[int], lrs: list[float]) -> RunState:
        """Initial states of all runs stacked on a leading axis.

        Runs are initialised one by one and stacked: a vmapped `Agent.init` over
        seeds was seen to hang XLA:CPU (jax 0.10.2). Initialisation is cheap.
        """
        init = jax.jit(self.init)
        states = [init(jnp.asarray(s), jnp.asarray(lr, jnp.float32)) for s, lr in zip(seeds, lrs)]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *states)
