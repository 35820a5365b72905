"""What flows from a collector to the learner: the carry a rollout continues from and the rollout itself.

Data only (no collector, no learner), so PPO, the methods' objectives and every collector
read the same types without importing each other.
"""

from __future__ import annotations

from typing import Any

from flax import struct

from hypermeta.envs.base import Array
from hypermeta.envs.trial import TrialState
from hypermeta.networks.encoder import EncoderInputs


@struct.dataclass
class EnvCarry:
    """Everything a rollout continues from (batched over environments)."""

    trial_state: TrialState
    obs: Array  # (E, obs_dim): the observation to act on next
    prev_action: Array  # (E, action_features): zeros at a trial start
    prev_reward: Array  # (E,): zeros at a trial start
    reset: Array  # (E,) bool: `obs` is the first observation of a trial
    hidden: Any  # the encoder's carry *before* processing `obs` (GRU: (E, H))


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
    init_hidden: Any  # the encoder's carry before step 0 (GRU: (E, H))
    last_value: Array  # (E,) value of the observation after the last step (bootstrap)

    def encoder_inputs(self) -> EncoderInputs:
        """The (T, E) encoder inputs, to replay the encoder from `init_hidden`."""
        return EncoderInputs(self.prev_action, self.prev_reward, self.obs, self.reset)


def encoder_inputs(carry: EnvCarry) -> EncoderInputs:
    """The encoder's inputs for the observation a carry is about to act on."""
    return EncoderInputs(carry.prev_action, carry.prev_reward, carry.obs, carry.reset)
