"""The host collector: gymnasium vector envs stepped in Python, with the policy step and the
PPO update jitted and shared with the JAX path (`collectors.base`'s contract and rules).

    learner = Learner(cfg)                           # a HostEnvironment gets a HostCollector
    chunk = learner.compile_chunk()                  # chunk(states, n) -> (states, metrics)
    learner.collector.close()

One update of every run, side by side (runs are vmapped, each with its own `num_envs`
environments of one vector env), with the shared rules of `collectors.base`:

1. split each run's key with `update_keys` (so a host run and a JAX run with the same seed
   sample the same actions);
2. `num_steps` times: the jitted, run-vmapped policy step (`act`, a sampled action) on
   the carried encoder inputs, then one step of the vector env; `step_record` and
   `next_carry` as in the JAX collector;
3. stack the steps into a `Rollout` and call the same jitted `learn` (`LearnerSteps`).

Evaluation plays one fresh trial in each of `eval_trials` environments per split (the
train and test task sets of ML10), with deterministic actions, one run after another,
and reports the meta-episode return and the success rate (an episode succeeds if any of
its steps does, Meta-World's convention).

The environments' state lives in Python, outside the checkpoint: a resumed run starts
fresh trials (the carry's reset flags restart the encoder, VariBAD's running trials are
emptied, the reward scaler's running return restarts), which only costs the unfinished
trials of the interrupted chunk.

All runs of an invocation step together (`parallel_runs` does not apply): R runs hold R x
num_envs host environments, created at the first chunk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hypermeta.config import TrainConfig
from hypermeta.envs.base import Array, PRNGKey
from hypermeta.envs.host import HostEnvironment, make_vector_env
from hypermeta.envs.trial import TrialState, TrialWrapper
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
from hypermeta.training.experience import EnvCarry, Rollout
from hypermeta.training.run_state import RunState


def _by_env(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A vector env's flat per-env array (one row per env) reshaped to `shape` ((runs, envs) or (envs,))."""
    return np.reshape(x, shape + np.shape(x)[1:])


def _trial_state(task: np.ndarray, episode: np.ndarray, shape: tuple[int, ...]) -> TrialState:
    """The trial state of host envs: no MDP state (it lives in the host env)."""
    return TrialState(env_state=np.zeros(shape, np.float32), task=np.asarray(task, np.float32),
                      episode=np.asarray(episode, np.int32))


class HostCollector:
    """The runs of a `HostEnvironment`; see the module docstring."""

    def __init__(self, env: HostEnvironment, wrapper: TrialWrapper, cfg: TrainConfig):
        self.env, self.wrapper, self.cfg = env, wrapper, cfg
        self.num_envs = cfg.ppo.num_envs
        self.num_runs = 0  # set when the environments open (the first chunk)
        self.envs = None
        self.eval_envs: dict = {}
        self._steps: LearnerSteps | None = None

    @property
    def agent(self) -> Agent:
        if self._steps is None:
            raise RuntimeError("HostCollector: call compile_chunk(steps) before collecting")
        return self._steps.agent

    # --- the collector contract ------------------------------------------------------------

    def initial_carry(self, agent: Agent, key: PRNGKey, num_envs: int) -> EnvCarry:
        """A placeholder: every env at a trial start with zero observations and tasks. `start`
        fills in the first observations and tasks when the environments (re)start."""
        shape = (num_envs,)
        trial_state = _trial_state(np.zeros(shape + (self.wrapper.task_dim,)), np.zeros(shape), shape)
        return jax.tree.map(jnp.asarray, first_carry(agent, trial_state,
                                                     jnp.zeros(shape + self.wrapper.observation_space.shape)))

    def compile_chunk(self, steps: LearnerSteps, parallel_runs: int = 0) -> Callable:
        """`chunk(states, n)`: n updates of every run, then one evaluation (`parallel_runs`
        does not apply: all runs step together)."""
        self._steps = steps
        self._pretraining = jax.jit(jax.vmap(steps.pretraining))
        self._policy = jax.jit(vmap_runs(self._policy_step))
        self._eval_policy = jax.jit(self._eval_step)
        self._keys = jax.jit(jax.vmap(lambda key: update_keys(key, self.cfg.ppo.num_steps)))
        self._eval_keys = jax.jit(jax.vmap(self._eval_seed))
        self._learn = jax.jit(vmap_runs(steps.learn), donate_argnums=0)
        return self.chunk

    def close(self) -> None:
        """Close every vector env (training and evaluation)."""
        for envs in [self.envs, *self.eval_envs.values()]:
            if envs is not None:
                envs.close()
        self.envs, self.eval_envs = None, {}

    # --- jitted pieces -------------------------------------------------------------------

    def _policy_step(self, params, norms, carry: EnvCarry, key: Array, use_task: Array):
        """One run's `sample_step` (as `JaxCollector.collect`) and the action's encoder features."""
        hidden, latent, action, log_prob, value = sample_step(self.agent, params, norms, carry, key, use_task)
        return hidden, latent, action, log_prob, value, action_features(self.wrapper.action_space, action)

    def _eval_step(self, params, norms, carry: EnvCarry):
        """Deterministic action for evaluation, as in `JaxCollector.evaluate`."""
        hidden, _, dist, _ = act(self.agent, params, norms, carry)
        action = dist.mode()
        return hidden, action, action_features(self.wrapper.action_space, action)

    def _eval_seed(self, key: Array):
        """(next run key, seed of the evaluation envs) from `eval_keys`."""
        key, eval_key = eval_keys(key)
        return key, jax.random.randint(eval_key, (), 0, 2**31 - 1)

    # --- host loop -----------------------------------------------------------------------

    def _first(self, obs: np.ndarray, info: dict, shape: tuple[int, ...]) -> EnvCarry:
        """The carry of freshly reset envs (one row per env, reshaped to `shape`)."""
        trial_state = _trial_state(_by_env(info["task"], shape), np.zeros(shape), shape)
        return first_carry(self.agent, trial_state, jnp.asarray(_by_env(obs, shape), jnp.float32))

    def _next(self, obs: np.ndarray, reward: np.ndarray, info: dict, a_feat: Array, hidden: Any,
              shape: tuple[int, ...]) -> EnvCarry:
        """The carry after a vector-env step (`next_carry`; the trial's bookkeeping is `TrialEnv`'s)."""
        def r(x: Any) -> np.ndarray:
            return _by_env(x, shape)

        done = r(info["trial_done"])
        trial_state = _trial_state(r(info["next_task"]), r(info["next_episode"]), shape)
        a_feat = jnp.reshape(a_feat, shape + (-1,))
        return next_carry(trial_state, jnp.asarray(r(obs), jnp.float32), a_feat,
                          jnp.asarray(r(reward), jnp.float32), jnp.asarray(done), hidden)

    def open_envs(self, num_runs: int) -> None:
        """Open the training envs of `num_runs` runs and the evaluation envs (once)."""
        if self.envs is None:
            self.num_runs = num_runs
            self.envs = make_vector_env(self.env, self.env.splits[0], num_runs * self.num_envs, self.cfg.vector_env)
        self.open_eval_envs()

    def open_eval_envs(self) -> None:
        """Open the evaluation envs, `eval_trials` per split (once; `hypermeta eval` needs only these)."""
        if not self.eval_envs:
            self.eval_envs = {split: make_vector_env(self.env, split, self.cfg.eval_trials, self.cfg.vector_env,
                                                     evaluation=True) for split in self.env.splits}

    def evaluator(self, steps: LearnerSteps) -> Evaluator:
        """`evaluate(params, norms, seed)`: one run's policy on one fresh trial in each of the
        `eval_trials` evaluation envs of every task set, the envs seeded with `seed`."""
        self.compile_chunk(steps)  # the jitted policy steps
        self.open_eval_envs()

        def evaluate(params: Any, norms: Any, seed: int, key: PRNGKey | None = None) -> dict[str, dict[str, np.ndarray]]:
            results = {}
            for s, split in enumerate(self.env.splits):
                returns, successes = self.evaluate_run(split, params, norms, seed)
                results["" if s == 0 else split] = {"returns": returns,
                                                    **({"successes": successes} if self.env.reports_success else {})}
            return results

        return evaluate

    def start(self, states: RunState) -> RunState:
        """Fresh trials in every training env, seeded from each run's key."""
        self.open_envs(states.key.shape[0])
        shape = (self.num_runs, self.num_envs)
        seeds = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, 1), (self.num_envs,), 0, 2**31 - 1))(states.key)
        obs, info = self.envs.reset(seed=[int(s) for s in np.asarray(seeds).ravel()])
        carry = self._first(obs, info, shape).replace(hidden=states.carry.hidden)
        return states.restart_trials(jax.tree.map(jnp.asarray, carry))

    def collect_runs(self, states: RunState) -> tuple[RunState, Rollout, EnvCarry, Array]:
        """One rollout of every run; returns (states with their next keys, rollout, carry, update keys)."""
        shape = (self.num_runs, self.num_envs)

        def r(x: Any) -> np.ndarray:
            return _by_env(x, shape)

        next_key, step_keys, update_key = self._keys(states.key)
        use_task = self._pretraining(states)
        carry = states.carry
        records: dict[str, list] = defaultdict(list)
        for t in range(self.cfg.ppo.num_steps):
            hidden, latent, action, log_prob, value, a_feat = self._policy(
                states.params, states.norms, carry, step_keys[:, t], use_task)
            action = np.asarray(action)
            obs, reward, _, _, info = self.envs.step(action.reshape((-1,) + action.shape[2:]))
            step_info = {"timeout": r(info["timeout"]), "task": r(info["task"]).astype(np.float32),
                         "episode": r(info["episode"]).astype(np.int32),
                         "next_obs": r(info["next_obs"]).astype(np.float32)}
            record = step_record(carry, action, log_prob, value, latent, r(reward).astype(np.float32),
                                 r(info["trial_done"]), step_info)
            for name, value_ in record.items():
                records[name].append(np.asarray(value_))
            carry = self._next(obs, reward, info, a_feat, hidden, shape)
        last_value = self._policy(states.params, states.norms, carry, step_keys[:, 0], use_task)[4]
        stacked = {name: np.stack(steps, axis=1) for name, steps in records.items()}  # (runs, T, envs, ...)
        # init_hidden is copied to the host: `states` (and so its carry) is donated to the update.
        rollout = Rollout(**stacked, init_hidden=jax.tree.map(np.asarray, states.carry.hidden), last_value=last_value)
        return states.replace(key=next_key), rollout, carry, update_key

    def update(self, states: RunState) -> tuple[RunState, dict]:
        """Collect one rollout per run on the host, then the shared jitted PPO update."""
        states, rollout, carry, update_key = self.collect_runs(states)
        return self._learn(states, rollout, jax.tree.map(jnp.asarray, carry), update_key)

    def evaluate_run(self, split: str, params, norms, seed: int,
                     on_step: Callable[[Any], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One trial in each evaluation env of `split`: (returns, successes), each (trials, K).
        `on_step(envs)` is called after the reset and after every step (`hypermeta eval
        --render` films the first env with it)."""
        envs, k = self.eval_envs[split], self.env.episodes_per_trial
        n = envs.num_envs
        obs, info = envs.reset(seed=seed)
        if on_step is not None:
            on_step(envs)
        carry = self._first(obs, info, (n,))
        active = np.ones(n, bool)
        returns, successes = np.zeros((n, k)), np.zeros((n, k))
        rows = np.arange(n)
        for _ in range(self.wrapper.max_trial_steps):
            hidden, action, a_feat = self._eval_policy(params, norms, carry)
            obs, reward, _, _, info = envs.step(np.asarray(action))
            episode, done = info["episode"], info["trial_done"]
            successes[rows, episode] = np.maximum(successes[rows, episode], info["success"] * active)
            returns, active = add_returns(returns, active, episode, reward, done, xp=np)
            if on_step is not None:
                on_step(envs)
            if not active.any():
                break
            carry = self._next(obs, reward, info, a_feat, hidden, (n,))
        return returns, successes

    def evaluate_runs(self, states: RunState, seeds: np.ndarray) -> dict[str, np.ndarray]:
        """Evaluation metrics of every run (leading run axis), per split."""
        metrics: dict[str, list] = defaultdict(list)
        for r in range(self.num_runs):
            params, norms = jax.tree.map(lambda x, r=r: x[r], (states.params, states.norms))
            for i, split in enumerate(self.env.splits):
                prefix = "" if i == 0 else f"{split}_"
                returns, successes = self.evaluate_run(split, params, norms, int(seeds[r]))
                metrics[f"{prefix}episode_returns"].append(returns.mean(axis=0))
                metrics[f"{prefix}meta_episode_return"].append(returns.sum(axis=1).mean())
                if self.env.reports_success:
                    metrics[f"{prefix}episode_successes"].append(successes.mean(axis=0))
                    metrics[f"{prefix}success_rate"].append(successes.mean())
        return {name: np.stack(values) for name, values in metrics.items()}

    def chunk(self, states: RunState, num_updates: int) -> tuple[RunState, dict]:
        """`num_updates` updates of every run, then one evaluation; metrics are chunk means."""
        if self.envs is None:
            states = self.start(states)
        totals: dict | None = None
        for _ in range(num_updates):
            states, stats = self.update(states)
            stats = jax.tree.map(np.asarray, stats)
            totals = stats if totals is None else jax.tree.map(np.add, totals, stats)
        metrics = jax.tree.map(np.asarray, chunk_means(totals or {}, num_updates))
        next_key, seeds = self._eval_keys(states.key)
        states = states.replace(key=next_key)
        metrics.update(self.evaluate_runs(states, np.asarray(seeds)))
        return states, metrics
