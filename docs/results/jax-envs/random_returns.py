"""Uniform random policy on the two settings of the CPU learning runs: mean return per trial
(counted until the trial's end) and mean reward per step, over 4,096 trials each.

    python docs/results/jax-envs/random_returns.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hypermeta.envs.registry import make_env
from hypermeta.envs.trial import TrialWrapper

SETTINGS = ("gymnax:MetaMaze-misc",
            "xland:XLand-MiniGrid-R1-9x9:benchmark=docs/results/jax-envs/trivial-5k,episodes=4")


def random_returns(name: str, n: int = 4096, seed: int = 0) -> tuple[float, float, float]:
    """(mean return per trial, its standard error, mean reward per step)."""
    env = make_env(name)
    trial = TrialWrapper(env, env.episodes_per_trial)

    @jax.jit
    def run(key):
        _, state = jax.vmap(trial.reset)(jax.random.split(key, n))

        def step(loop, k):
            state, active = loop
            actions = jax.vmap(trial.action_space.sample)(jax.random.split(k, n))
            _, state, reward, done, _ = jax.vmap(trial.step)(jax.random.split(jax.random.fold_in(k, 1), n), state, actions)
            return (state, active & ~done), (reward * active, active)

        _, (rewards, active) = jax.lax.scan(step, (state, jnp.ones(n, bool)), jax.random.split(key, trial.max_trial_steps))
        returns = rewards.sum(0)
        return returns.mean(), returns.std() / n**0.5, rewards.sum() / active.sum()

    return tuple(float(x) for x in run(jax.random.PRNGKey(seed)))  # type: ignore[return-value]


if __name__ == "__main__":
    for name in SETTINGS:
        mean, se, per_step = random_returns(name)
        print(f"{name}: random return per trial {mean:.3f} (s.e. {se:.3f}), reward per step {per_step:.5f}")
