"""Collecting experience: the agent acting in a batch of trial-wrapped environments.

`collect` is a `lax.scan` over `num_steps` steps that returns a `Rollout` (what the
PPO update needs) and the `EnvCarry` that the next rollout continues from. The
hidden state is carried across rollouts and reset only at trial boundaries:
`EnvCarry.reset` marks an observation that starts a new trial, and the encoder
zeroes its hidden state when it sees that flag, both while acting and when the
update replays the stored sequence from `Rollout.init_hidden`.

A host-side collector (environments stepped in Python) only has to produce the
same `Rollout` structure to reuse `hypermeta.training.ppo` unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from hypermeta.envs.base import Array, PRNGKey
from hypermeta.envs.trial import TrialState, TrialWrapper
from hypermeta.networks.agent import Agent, action_feature_dim, action_features
from hypermeta.training import conditioning
from hypermeta.training.conditioning import Normalizers


@struct.dataclass
class EnvCarry:
    """Everything a rollout continues from (batched over environments)."""

    trial_state: TrialState
    obs: Array  # (E, obs_dim): the observation to act on next
    prev_action: Array  # (E, action_features): zeros at a trial start
    prev_reward: Array  # (E,): zeros at a trial start
    reset: Array  # (E,) bool: `obs` is the first observation of a trial
    hidden: Array  # (E, H): encoder state *before* processing `obs`


@struct.dataclass
class Rollout:
    """T steps of E environments. Encoder inputs at step t and the transition taken."""

    obs: Array  # (T, E, obs_dim) raw observations
    prev_action: Array  # (T, E, action_features)
    prev_reward: Array  # (T, E)
    reset: Array  # (T, E) trial starts at this step
    action: Array  # (T, E, ...)
    log_prob: Array  # (T, E)
    value: Array  # (T, E)
    reward: Array  # (T, E) raw rewards
    done: Array  # (T, E) the step ended the trial (the end of the meta-episode; see `timeout`)
    timeout: Array  # (T, E) the trial ended at a time limit (PPOConfig.time_limit "proper")
    task: Array  # (T, E, task_dim) the task of the step (targets for task inference)
    episode: Array  # (T, E) episode index within the trial
    latent: Array  # (T, E, 2 * latent_dim) the encoder's output the policy read
    next_obs: Array  # (T, E, obs_dim) the MDP's observation after the step, before any reset, with the episode's done bit
    cell: Array  # (T, E) int32 the agent's cell after the step (0 where the env has no cells)
    cell_hit: Array  # (T, E) bool the step earned the goal reward of its cell
    init_hidden: Array  # (E, H) encoder state before step 0
    last_value: Array  # (E,) value of the observation after the last step (bootstrap)


def reset_carry(wrapper: TrialWrapper, agent: Agent, key: PRNGKey, num_envs: int) -> EnvCarry:
    """Fresh trials in `num_envs` environments."""
    obs, trial_state = jax.vmap(wrapper.reset)(jax.random.split(key, num_envs))
    return EnvCarry(
        trial_state=trial_state,
        obs=obs,
        prev_action=jnp.zeros((num_envs, action_feature_dim(wrapper.action_space))),
        prev_reward=jnp.zeros((num_envs,)),
        reset=jnp.ones((num_envs,), bool),
        hidden=agent.initial_hidden((num_envs,)),
    )


def host_carry(wrapper: TrialWrapper, agent: Agent, num_envs: int) -> EnvCarry:
    """The carry of environments stepped in Python: no MDP state (it lives in the host env),
    zeros elsewhere, every env at a trial start. The host collector fills in the first
    observations and tasks when it (re)starts its environments."""
    return EnvCarry(
        trial_state=TrialState(env_state=jnp.zeros((num_envs,)), task=jnp.zeros((num_envs, wrapper.task_dim)),
                               episode=jnp.zeros((num_envs,), jnp.int32)),
        obs=jnp.zeros((num_envs, wrapper.observation_space.shape[0])),
        prev_action=jnp.zeros((num_envs, action_feature_dim(wrapper.action_space))),
        prev_reward=jnp.zeros((num_envs,)),
        reset=jnp.ones((num_envs,), bool),
        hidden=agent.initial_hidden((num_envs,)),
    )


def act(agent: Agent, params, norms: Normalizers, carry: EnvCarry, use_task: Array | bool = False):
    """Encoder step and policy for the current observation; returns (hidden, latent, dist, value).

    `use_task`: condition on the true task (multi-task pre-training) instead of the latent.
    """
    hidden, latent = agent.apply(
        params, carry.hidden, carry.prev_action, carry.prev_reward, carry.obs, carry.reset, method=Agent.encode
    )
    dist, value = conditioning.policy(agent, params, norms, carry.obs, latent, carry.trial_state.task, use_task)
    return hidden, latent, dist, value


def env_step(wrapper: TrialWrapper, key: PRNGKey, carry: EnvCarry, hidden: Array, action: Array):
    """Step every environment and build the next carry; returns (carry, reward, done, info)."""
    num_envs = carry.obs.shape[0]
    obs, trial_state, reward, done, info = jax.vmap(wrapper.step)(
        jax.random.split(key, num_envs), carry.trial_state, action
    )
    a_feat = action_features(wrapper.action_space, action)
    next_carry = EnvCarry(
        trial_state=trial_state,
        obs=obs,
        prev_action=jnp.where(done[:, None], 0.0, a_feat),
        prev_reward=jnp.where(done, 0.0, reward),
        reset=done,
        hidden=hidden,
    )
    return next_carry, reward, done, info


def collect(
    wrapper: TrialWrapper,
    agent: Agent,
    params,
    norms: Normalizers,
    carry: EnvCarry,
    key: PRNGKey,
    num_steps: int,
    use_task: Array | bool = False,
) -> tuple[EnvCarry, Rollout]:
    """Act for `num_steps` steps with sampled actions."""

    def step(carry: EnvCarry, key: PRNGKey):
        act_key, env_key = jax.random.split(key)
        hidden, latent, dist, value = act(agent, params, norms, carry, use_task)
        action = dist.sample(act_key)
        next_carry, reward, done, info = env_step(wrapper, env_key, carry, hidden, action)
        record = dict(
            obs=carry.obs,
            prev_action=carry.prev_action,
            prev_reward=carry.prev_reward,
            reset=carry.reset,
            action=action,
            log_prob=dist.log_prob(action),
            value=value,
            reward=reward,
            done=done,
            timeout=info["timeout"],
            task=info["task"],
            episode=info["episode"],
            latent=latent,
            next_obs=info["next_obs"],
            cell=info.get("cell", jnp.zeros_like(info["episode"])),
            cell_hit=info.get("cell_hit", jnp.zeros_like(done)),
        )
        return next_carry, record

    final, records = jax.lax.scan(step, carry, jax.random.split(key, num_steps))
    _, _, _, last_value = act(agent, params, norms, final, use_task)
    return final, Rollout(**records, init_hidden=carry.hidden, last_value=last_value)
