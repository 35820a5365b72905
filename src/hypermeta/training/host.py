"""Training on host environments: gymnasium vector envs stepped in Python, with the policy
step and the PPO update jitted and shared with the JAX path.

    trainer = HostTrainer(learner, num_runs)        # learner.on_host
    states, metrics = trainer.chunk(states, n)      # the contract of Learner.compile_chunk()
    trainer.close()

One update of every run, side by side (runs are vmapped, each with its own `num_envs`
environments of one vector env):

1. split each run's key exactly as `Learner.train_update` does, and the collect key into
   one key per step (so a host run and a JAX run with the same seed sample the same actions);
2. `num_steps` times: the jitted, run-vmapped policy step (`rollout.act`, a sampled action)
   on the carried encoder inputs, then one step of the vector env;
3. stack the steps into the `Rollout` the JAX `collect` returns and call the same jitted
   `Learner.learn`.

Evaluation plays one fresh trial in each of `eval_trials` environments per split (the
train and test task sets of ML10), with deterministic actions, one run after another,
and reports the meta-episode return and the success rate (an episode succeeds if any of
its steps does, Meta-World's convention).

The environments' state lives in Python, outside the checkpoint: a resumed run starts
fresh trials (the carry's reset flags restart the encoder, VariBAD's running trials are
emptied, the reward scaler's running return restarts), which only costs the unfinished
trials of the interrupted chunk.

All runs of an invocation step together (`parallel_runs` does not apply): R runs hold R x
num_envs host environments.
"""

from __future__ import annotations

from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np

from hypermeta.envs.base import Array
from hypermeta.envs.host import HostEnvironment, VectorStrategy, make_vector_env
from hypermeta.envs.trial import TrialState
from hypermeta.networks.agent import action_feature_dim, action_features
from hypermeta.training.learner import Learner, RunState
from hypermeta.training.rollout import EnvCarry, Rollout, act


class HostTrainer:
    """The runs of a learner whose environment is a `HostEnvironment`; see the module docstring."""

    def __init__(self, learner: Learner, num_runs: int, vector: VectorStrategy = "sync"):
        if not learner.on_host:
            raise ValueError(f"{learner.cfg.env!r} is a JAX environment: use Learner.compile_chunk()")
        cfg = learner.cfg
        self.learner, self.cfg = learner, cfg
        self.env: HostEnvironment = learner.env
        self.num_runs, self.num_envs = num_runs, cfg.ppo.num_envs
        self.envs = make_vector_env(self.env, self.env.splits[0], num_runs * self.num_envs, vector)
        self.eval_envs = {split: make_vector_env(self.env, split, cfg.eval_trials, vector, evaluation=True)
                          for split in self.env.splits}
        self.started = False
        self._policy = jax.jit(jax.vmap(self._policy_step))
        self._eval_policy = jax.jit(self._eval_step)
        self._keys = jax.jit(jax.vmap(self._update_keys))
        self._eval_keys = jax.jit(jax.vmap(self._split_eval_key))
        self._learn = jax.jit(jax.vmap(learner.learn), donate_argnums=0)

    # --- jitted pieces -------------------------------------------------------------------

    def _policy_step(self, params, norms, carry: EnvCarry, key: Array, use_task: Array):
        """One run's encoder step and sampled action, as in `rollout.collect`."""
        act_key, _ = jax.random.split(key)  # the second half steps a JAX env; unused here
        hidden, latent, dist, value = act(self.learner.agent, params, norms, carry, use_task)
        action = dist.sample(act_key)
        a_feat = action_features(self.learner.wrapper.action_space, action)
        return hidden, latent, action, dist.log_prob(action), value, a_feat

    def _eval_step(self, params, norms, carry: EnvCarry):
        """Deterministic action for evaluation, as in `Learner.evaluate`."""
        hidden, _, dist, _ = act(self.learner.agent, params, norms, carry)
        action = dist.mode()
        return hidden, action, action_features(self.learner.wrapper.action_space, action)

    def _update_keys(self, key: Array):
        """(next run key, one key per step, update key), split as in `Learner.train_update`."""
        key, collect_key, update_key = jax.random.split(key, 3)
        return key, jax.random.split(collect_key, self.cfg.ppo.num_steps), update_key

    def _split_eval_key(self, key: Array):
        """(next run key, seed of the evaluation envs), split as in `Learner.train_chunk`."""
        key, eval_key = jax.random.split(key)
        return key, jax.random.randint(eval_key, (), 0, 2**31 - 1)

    # --- host loop -----------------------------------------------------------------------

    @staticmethod
    def _carry(obs: np.ndarray, task: np.ndarray, episode: np.ndarray, prev_action: np.ndarray,
               prev_reward: np.ndarray, reset: np.ndarray, hidden: Array, shape: tuple[int, ...]) -> EnvCarry:
        """An EnvCarry of host arrays, each given flat as the vector env returns it (one row per
        env) and reshaped to `shape`, (runs, envs) or (envs,)."""
        r = lambda x: np.reshape(x, shape + np.shape(x)[1:])  # noqa: E731
        return EnvCarry(trial_state=TrialState(env_state=np.zeros(shape, np.float32), task=r(task).astype(np.float32),
                                               episode=r(episode).astype(np.int32)),
                        obs=r(obs).astype(np.float32), prev_action=r(prev_action).astype(np.float32),
                        prev_reward=r(prev_reward).astype(np.float32), reset=r(reset).astype(bool), hidden=hidden)

    def _first_carry(self, obs: np.ndarray, info: dict, hidden: Array, shape: tuple[int, ...]) -> EnvCarry:
        """The carry of freshly reset envs: every env at a trial start (as `rollout.reset_carry`)."""
        n = obs.shape[0]
        a_dim = action_feature_dim(self.learner.wrapper.action_space)
        return self._carry(obs, info["task"], np.zeros(n), np.zeros((n, a_dim)), np.zeros(n), np.ones(n, bool),
                           hidden, shape)

    def _next_carry(self, obs: np.ndarray, reward: np.ndarray, info: dict, a_feat: Array, hidden: Array,
                    shape: tuple[int, ...]) -> EnvCarry:
        """The carry after a vector-env step (as `rollout.env_step`): the encoder's previous
        action and reward are zeros where a trial has just started."""
        done = info["trial_done"]
        a_feat = np.asarray(a_feat).reshape((done.shape[0], -1))
        return self._carry(obs, info["next_task"], np.where(done, 0, info["episode"] + info["episode_done"]),
                           np.where(done[:, None], 0.0, a_feat), np.where(done, 0.0, reward), done, hidden, shape)

    def start(self, states: RunState) -> RunState:
        """Fresh trials in every training env, seeded from each run's key."""
        shape = (self.num_runs, self.num_envs)
        seeds = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, 1), (self.num_envs,), 0, 2**31 - 1))(states.key)
        obs, info = self.envs.reset(seed=[int(s) for s in np.asarray(seeds).ravel()])
        carry = self._first_carry(obs, info, states.carry.hidden, shape)
        running = states.trials.running
        trials = states.trials.replace(running=running.replace(length=jnp.zeros_like(running.length)))
        scaler = states.reward_scaler.replace(ret=jnp.zeros_like(states.reward_scaler.ret))  # returns of new trials
        self.started = True
        return states.replace(carry=jax.tree.map(jnp.asarray, carry), trials=trials, reward_scaler=scaler)

    def collect(self, states: RunState) -> tuple[RunState, Rollout, EnvCarry, Array]:
        """One rollout of every run; returns (states with their next keys, rollout, carry, update keys)."""
        shape = (self.num_runs, self.num_envs)
        next_key, step_keys, update_key = self._keys(states.key)
        step_keys = np.asarray(step_keys)
        use_task = np.asarray(states.update) < self.learner.pretrain_updates
        carry = states.carry
        records: dict[str, list] = defaultdict(list)
        for t in range(self.cfg.ppo.num_steps):
            hidden, latent, action, log_prob, value, a_feat = self._policy(
                states.params, states.norms, carry, step_keys[:, t], use_task)
            action = np.asarray(action)
            obs, reward, _, _, info = self.envs.step(action.reshape((-1,) + action.shape[2:]))
            for name, value_ in (("obs", carry.obs), ("prev_action", carry.prev_action),
                                 ("prev_reward", carry.prev_reward), ("reset", carry.reset), ("action", action),
                                 ("log_prob", log_prob), ("value", value),
                                 ("reward", reward.astype(np.float32).reshape(shape)),
                                 ("done", info["trial_done"].reshape(shape)),
                                 ("timeout", info["timeout"].reshape(shape)),
                                 ("task", info["task"].reshape(shape + (-1,)).astype(np.float32)),
                                 ("episode", info["episode"].reshape(shape).astype(np.int32)), ("latent", latent),
                                 ("next_obs", info["next_obs"].reshape(shape + (-1,)).astype(np.float32))):
                records[name].append(np.asarray(value_))
            carry = self._next_carry(obs, reward, info, a_feat, hidden, shape)
        last_value = self._policy(states.params, states.norms, carry, step_keys[:, 0], use_task)[4]
        stacked = {name: np.stack(steps, axis=1) for name, steps in records.items()}  # (runs, T, envs, ...)
        zeros = np.zeros_like(stacked["episode"])
        # init_hidden is copied to the host: `states` (and so its carry) is donated to the update.
        rollout = Rollout(**stacked, cell=zeros, cell_hit=zeros.astype(bool), init_hidden=np.asarray(states.carry.hidden),
                          last_value=last_value)
        return states.replace(key=next_key), rollout, carry, update_key

    def update(self, states: RunState) -> tuple[RunState, dict]:
        """Collect one rollout per run on the host, then the shared jitted PPO update."""
        states, rollout, carry, update_key = self.collect(states)
        return self._learn(states, rollout, jax.tree.map(jnp.asarray, carry), update_key)

    def evaluate_run(self, split: str, params, norms, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """One trial in each evaluation env of `split`: (returns, successes), each (trials, K)."""
        envs, k = self.eval_envs[split], self.env.episodes_per_trial
        n = envs.num_envs
        obs, info = envs.reset(seed=seed)
        carry = self._first_carry(obs, info, self.learner.agent.initial_hidden((n,)), (n,))
        active = np.ones(n, bool)
        returns, successes = np.zeros((n, k)), np.zeros((n, k))
        rows = np.arange(n)
        for _ in range(self.learner.wrapper.max_trial_steps):
            hidden, action, a_feat = self._eval_policy(params, norms, carry)
            obs, reward, _, _, info = envs.step(np.asarray(action))
            episode, done = info["episode"], info["trial_done"]
            returns[rows, episode] += reward * active
            successes[rows, episode] = np.maximum(successes[rows, episode], info["success"] * active)
            active &= ~done
            if not active.any():
                break
            carry = self._next_carry(obs, reward, info, a_feat, hidden, (n,))
        return returns, successes

    def evaluate(self, states: RunState, seeds: np.ndarray) -> dict[str, np.ndarray]:
        """Evaluation metrics of every run (leading run axis), per split."""
        metrics: dict[str, list] = defaultdict(list)
        for r in range(self.num_runs):
            params, norms = jax.tree.map(lambda x: x[r], (states.params, states.norms))
            for i, split in enumerate(self.env.splits):
                prefix = "" if i == 0 else f"{split}_"
                returns, successes = self.evaluate_run(split, params, norms, int(seeds[r]))
                metrics[f"{prefix}episode_returns"].append(returns.mean(axis=0))
                metrics[f"{prefix}meta_episode_return"].append(returns.sum(axis=1).mean())
                metrics[f"{prefix}episode_successes"].append(successes.mean(axis=0))
                metrics[f"{prefix}success_rate"].append(successes.mean())
        return {name: np.stack(values) for name, values in metrics.items()}

    def chunk(self, states: RunState, num_updates: int) -> tuple[RunState, dict]:
        """`num_updates` updates of every run, then one evaluation; metrics are chunk means."""
        if not self.started:
            states = self.start(states)
        totals: dict | None = None
        for _ in range(num_updates):
            states, stats = self.update(states)
            stats = jax.tree.map(np.asarray, stats)
            totals = stats if totals is None else jax.tree.map(np.add, totals, stats)
        metrics = {name: total / max(num_updates, 1) for name, total in (totals or {}).items()}
        next_key, seeds = self._eval_keys(states.key)
        states = states.replace(key=next_key)
        metrics.update(self.evaluate(states, np.asarray(seeds)))
        return states, metrics

    def close(self) -> None:
        self.envs.close()
        for envs in self.eval_envs.values():
            envs.close()
