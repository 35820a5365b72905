"""A run's state: everything one run needs to continue, checkpointed as is.

Its own module so that the collectors, which read and advance it, need not import the
learner that defines the update.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import struct

from hypermeta.envs.base import Array
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.experience import EnvCarry
from hypermeta.training.ppo import RewardScaler
from hypermeta.training.trial_buffer import TrialBuffer


@struct.dataclass
class RunState:
    """Everything one run needs to continue; checkpointed as is."""

    params: Any
    opt_state: Any
    vae_opt_state: Any  # the ELBO's optimiser (VariBAD-type methods; unused otherwise)
    norms: Normalizers
    reward_scaler: RewardScaler
    carry: EnvCarry
    trials: TrialBuffer  # completed trials for the ELBO (a 1-trial stub for other methods)
    key: Array
    lr: Array  # base learning rate of the run
    update: Array  # int32: updates done so far

    def restart_trials(self, carry: EnvCarry) -> RunState:
        """The state with `carry` and every trial starting afresh: no running trial of the ELBO's
        buffer and no running return of the reward scaler (a host collector restarts its
        environments when a run resumes)."""
        running = self.trials.running
        trials = self.trials.replace(running=running.replace(length=jnp.zeros_like(running.length)))
        scaler = self.reward_scaler.replace(ret=jnp.zeros_like(self.reward_scaler.ret))
        return self.replace(carry=carry, trials=trials, reward_scaler=scaler)
