"""A trained policy to drive step by step in your own loop: `hypermeta.load_run(path).policy()`.

    policy = hypermeta.load_run("runs/grid-world_rnn-hn").policy(seed=73)
    env, key = policy.env, jax.random.PRNGKey(0)       # the run's environment
    key, k_task, k_reset = jax.random.split(key, 3)
    task = env.sample_task(k_task)                     # one task for the trial's K episodes
    obs, state = env.reset(k_reset, task)
    action = policy.act(obs)                           # a new trial: fresh memory
    for step in range(1000):
        key, k_step, k_task, k_reset = jax.random.split(key, 4)
        obs, state, reward, done, info = env.step(k_step, state, action, task)
        if done:                                       # the episode ended
            if policy.trial_ends(done):                # ...and the trial with it (its K-th episode)
                task = env.sample_task(k_task)         # the policy's memory starts afresh too
            obs, state = env.reset(k_reset, task)
        action = policy.act(obs, reward=reward, done=done)

The policy keeps the trial's memory (the encoder's hidden state) and does what the trial
wrapper does in training (`hypermeta.envs.trial`): it counts episode ends, appends the done
bit to the observation where a trial has K > 1 episodes, feeds the encoder the previous
action and reward (zeros at a trial start), and after the K-th episode end starts a new
trial with fresh memory: draw a new task then. `policy.episodes_per_trial` is K. Actions
are deterministic (the distribution's mode, as in evaluation) unless `act` gets a key.

This is the evaluation's own step (`hypermeta.training.collectors.base.act` and `next_carry`), jitted:
a loop that plays the tasks `hypermeta eval` plays gets its actions and returns.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hypermeta.config import TrainConfig
from hypermeta.envs.base import Array, EnvironmentBase, Space
from hypermeta.envs.trial import TrialState
from hypermeta.errors import UsageError
from hypermeta.networks.agent import Agent, action_feature_dim, action_features
from hypermeta.training.collectors.base import act, next_carry
from hypermeta.training.conditioning import Normalizers


@struct.dataclass
class PolicyState:
    """What a policy carries from one step to the next, for n environments."""

    hidden: Any  # the encoder's carry after the last step (GRU: (n, H))
    prev_action: Array  # (n, action_features): the last action as the encoder reads it
    episode: Array  # (n,) int32: episodes finished in the current trial
    new_trial: Array  # (n,) bool: the next observation starts a new trial (fresh memory)


def initial_state(agent: Agent, n: int) -> PolicyState:
    """n environments about to start a trial."""
    return PolicyState(hidden=agent.initial_carry((n,)), prev_action=jnp.zeros((n, action_feature_dim(agent.action_space))),
                       episode=jnp.zeros((n,), jnp.int32), new_trial=jnp.ones((n,), bool))


def policy_step(agent: Agent, episodes_per_trial: int, params, norms: Normalizers, state: PolicyState, obs: Array,
                reward: Array, done: Array, task: Array, key: Array,
                sample: bool = False) -> tuple[PolicyState, Array, Array]:
    """One step of n environments: (next state, actions, latents (n, 2 * latent_dim)).

    `obs` (n, obs_dim) is the environment's observation, `reward` (n,) and `done` (n,) what
    the previous step returned (`done`: it ended an episode; ignored at a trial start), `task`
    (n, task_dim) the task (read only by a policy conditioned on it). The trial's rules are
    `TrialWrapper.step`'s and the evaluation's (`JaxCollector.env_step`, `next_carry`)."""
    episode = state.episode + done.astype(jnp.int32)
    trial_done = state.new_trial | (episode >= episodes_per_trial)
    episode = jnp.where(trial_done, 0, episode)
    if episodes_per_trial > 1:  # the trial's done bit: 1 on the first observation of a later episode
        obs = jnp.concatenate([obs, (done & ~trial_done).astype(obs.dtype)[:, None]], axis=-1)
    trial_state = TrialState(env_state=None, task=task, episode=episode)
    # At a trial start the encoder's previous action and reward are zeros and its memory resets.
    carry = next_carry(trial_state, obs, state.prev_action, reward, trial_done, state.hidden)
    hidden, latent, dist, _ = act(agent, params, norms, carry)
    action = dist.sample(key) if sample else dist.mode()
    following = PolicyState(hidden=hidden, prev_action=action_features(agent.action_space, action), episode=episode,
                            new_trial=jnp.zeros_like(trial_done))
    return following, action, latent


class Policy:
    """One run's trained policy with its memory, acting on one environment or a batch of n.

    Shapes (one environment / n environments): observations (obs_dim,) / (n, obs_dim), the
    environment's own observation without the trial's done bit; rewards and dones scalars /
    (n,); tasks (task_dim,) / (n, task_dim); actions () int for discrete action spaces or
    (action_dim,) float / (n,) or (n, action_dim).

    Attributes:
        config: the run's `TrainConfig`.
        env: the run's environment (a JAX `Environment`: `sample_task`, `reset`, `step`; or a
            host environment, whose gymnasium envs you step yourself).
        seed: the run's training seed.
        lr: the run's learning rate.
        checkpoint: the update of the restored checkpoint.
        episodes_per_trial: K, episodes per task before the policy starts a new trial.
    """

    def __init__(self, agent: Agent, env: EnvironmentBase, params, norms: Normalizers, *, config: TrainConfig,
                 seed: int, lr: float, checkpoint: int):
        """A policy from one run's parameters and normalisers (`load_policy` restores them)."""
        self.agent, self.env, self.config = agent, env, config
        self.seed, self.lr, self.checkpoint = seed, lr, checkpoint
        self.episodes_per_trial: int = env.episodes_per_trial
        self._params, self._norms = params, norms
        self._step = jax.jit(functools.partial(policy_step, agent, self.episodes_per_trial), static_argnames="sample")
        self._state: PolicyState | None = None
        self._latent: np.ndarray | None = None
        self._no_key = jax.random.PRNGKey(0)  # what the jitted step gets where the action is the mode

    def __repr__(self) -> str:
        return (f"Policy({self.config.method} on {self.config.env}, seed {self.seed}, lr {self.lr:g}, "
                f"update {self.checkpoint})")

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """The shape `act` takes for one environment: the environment's observation."""
        return tuple(self.env.observation_space.shape)

    @property
    def action_space(self) -> Space:
        """The environment's action space (`Discrete(n)` or `Box`)."""
        return self.env.action_space

    @property
    def needs_task(self) -> bool:
        """Whether `act` needs `task=` (the multi-task oracle reads the true task, not a latent)."""
        return self.agent.method.policy_input.reads_task

    @property
    def latent(self) -> np.ndarray | None:
        """The encoder's latent at the last step, (2 * latent_dim,) or (n, 2 * latent_dim)
        ([mean, log-variance] for the VariBAD-type methods); None before the first step."""
        return self._latent

    def trial_ends(self, done: Any) -> bool | np.ndarray:
        """Whether the next `act`, given this `done`, starts a new trial (fresh memory): the
        K-th episode of the trial just ended (or `reset` asked for it). Draw the new trial's
        task before resetting the environment there.

        Args:
            done: what the last step returned, bool or (n,), as the next `act` will get it.

        Returns:
            A bool for one environment, a boolean (n,) array for n; True everywhere before the
            first `act`.
        """
        if self._state is None:
            return True if np.ndim(done) == 0 else np.ones(np.shape(done), bool)
        n = self._state.new_trial.shape[0]
        finished = _per_env(done, n, bool)
        ends = np.asarray(self._state.new_trial) | (finished & (np.asarray(self._state.episode) + 1 >= self.episodes_per_trial))
        return bool(ends[0]) if np.ndim(done) == 0 and n == 1 else ends

    def reset(self, envs: Any = None) -> None:
        """Start new trials: fresh memory at the next `act`.

        Args:
            envs: None (all; the next `act` may also change the batch size), or a boolean mask
                (n,) or indices of the environments whose next observation starts a trial.
        """
        if envs is None or self._state is None:
            self._state = None
            return
        n = self._state.new_trial.shape[0]
        mask = np.zeros(n, bool)
        mask[np.asarray(envs)] = True
        self._state = self._state.replace(new_trial=self._state.new_trial | mask)

    def act(self, obs: Any, reward: Any = 0.0, done: Any = False, *, task: Any = None,
            key: jax.Array | None = None) -> np.ndarray:
        """The action for `obs`, updating the policy's memory.

        Args:
            obs: the environment's observation, (obs_dim,) or (n, obs_dim); after an episode
                end, the first observation of the next episode (reset the environment yourself).
            reward: the reward of the previous step, scalar or (n,); ignored at a trial start.
            done: whether the previous step ended an episode, bool or (n,). After the K-th
                episode end the policy starts a new trial (draw a new task for it).
            task: the task vector, (task_dim,) or (n, task_dim); only where `needs_task`.
            key: a PRNG key to sample the action; None (default): the mode, as in evaluation.

        Returns:
            The action: () or (n,) for a discrete action space, (action_dim,) or (n, action_dim)
            otherwise (numpy).
        """
        obs = np.asarray(obs, np.float32)
        single = obs.ndim == len(self.observation_shape)
        batch = obs[None] if single else obs
        if batch.ndim != 2 or batch.shape[1:] != self.observation_shape:
            raise UsageError(f"obs of shape {obs.shape}: this policy takes the environment's observation, "
                             f"{self.observation_shape} or (n, *{self.observation_shape}) (without the trial's done "
                             "bit, which it appends itself)")
        n = batch.shape[0]
        if self._state is None:
            self._state = initial_state(self.agent, n)
        elif self._state.new_trial.shape[0] != n:
            raise UsageError(f"obs for {n} environments, but the policy's trials are {self._state.new_trial.shape[0]}; "
                             "call reset() to start trials with another number of environments")
        self._state, action, latent = self._step(
            self._params, self._norms, self._state, batch, _per_env(reward, n, np.float32),
            _per_env(done, n, bool), self._task(task, n), self._no_key if key is None else key,
            sample=key is not None)
        action, latent = np.asarray(action), np.asarray(latent)
        self._latent = latent[0] if single else latent
        return action[0] if single else action

    def _task(self, task: Any, n: int) -> np.ndarray:
        """(n, task_dim) tasks: those given, or zeros for a policy that never reads them."""
        dim = self.agent.task_dim
        if task is None:
            if self.needs_task:
                raise UsageError(f"{self.config.method} is conditioned on the true task: pass task= "
                                 f"(the environment's task vector, ({dim},))")
            return np.zeros((n, dim), np.float32)
        return np.broadcast_to(np.asarray(task, np.float32), (n, dim))


def _per_env(value: Any, n: int, dtype: type) -> np.ndarray:
    """A scalar or (n,) value as (n,)."""
    value = np.asarray(value, dtype)
    if value.shape not in ((), (1,), (n,)):
        raise UsageError(f"a reward or done of shape {value.shape} for {n} environments; give a scalar or ({n},)")
    return np.broadcast_to(value.reshape(-1) if value.ndim else value, (n,))


def pick_run(cfg: TrainConfig, seed: int | None, lr: float | None, where: Path) -> int:
    """The index (into cfg.runs) of the one run with `seed` and `lr` (None: any)."""
    found = [i for i, (s, r) in enumerate(cfg.runs)
             if (seed is None or s == seed) and (lr is None or math.isclose(r, lr, rel_tol=1e-9))]
    runs = "; ".join(f"seed={s}, lr={r:g}" for s, r in cfg.runs)
    if not found:
        asked = ", ".join(f"{k}={v:g}" for k, v in (("seed", seed), ("lr", lr)) if v is not None)
        raise UsageError(f"{asked}: no such run in {where}; its runs: {runs}")
    if len(found) > 1:
        raise UsageError(f"{where} holds {len(found)} matching runs ({runs}): choose one with seed= and lr=")
    return found[0]


def load_policy(path: Path, seed: int | None = None, lr: float | None = None,
                checkpoint: str | int = "latest") -> Policy:
    """One run's policy from the run directory `path` (see `hypermeta.api.Run.policy`).

    Raises:
        UsageError: not a run directory, no such run or checkpoint, or a checkpoint that does
            not fit the configuration.
    """
    from hypermeta.evaluation import checkpoint_step, open_run, restore_policies
    from hypermeta.training.learner import Learner

    run, cfg = open_run(path)
    i = pick_run(cfg, seed, lr, run.path)
    learner = None
    try:
        learner = Learner(cfg)  # the agent, built from the configuration as in training
        step = checkpoint_step(run, str(checkpoint))
        params, norms = restore_policies(run, cfg, step, learner)
    finally:
        run.close()
        if learner is not None:
            learner.collector.close()  # acting needs no collector (a host environment's would hold envs)
    one = jax.tree.map(lambda x: x[i], (params, norms))
    return Policy(learner.agent, learner.env, *one, config=cfg, seed=cfg.runs[i][0], lr=cfg.runs[i][1], checkpoint=step)
