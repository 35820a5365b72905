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
from hypermeta.envs.host import HostEnvironment
from hypermeta.envs.registry import make_env
from hypermeta.envs.trial import TrialWrapper
from hypermeta.methods.registry import get_method
from hypermeta.networks.agent import Agent
from hypermeta.networks.agent import action_feature_dim, action_features
from hypermeta.training import inference, ppo
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.rollout import EnvCarry, Rollout, act, collect, env_step, host_carry, reset_carry
from hypermeta.training.trial_buffer import TrialBuffer


@struct.dataclass
class RunState:
    """Everything one run needs to continue; checkpointed as is."""

    params: Any
    opt_state: Any
    vae_opt_state: Any  # the ELBO's optimiser (VariBAD-type methods; unused otherwise)
    norms: Normalizers
    reward_scaler: ppo.RewardScaler
    carry: EnvCarry
    trials: TrialBuffer  # completed trials for the ELBO (a 1-trial stub for other methods)
    key: Array
    lr: Array  # base learning rate of the run
    update: Array  # int32: updates done so far


def pretrain_updates(cfg: TrainConfig) -> int:
    """Updates of the budget spent in multi-task pre-training (0 for methods without it)."""
    if get_method(cfg.method).pretrain == "none":
        return 0
    return min(cfg.inference.pretrain_updates, cfg.num_updates)


class Learner:
    """Static pieces of a training configuration (env, agent, optimizer) and the pure steps."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        env = make_env(cfg.env)
        self.env = env
        # Host environments (gymnasium, stepped in Python) are collected by
        # `hypermeta.training.host.HostTrainer`; the trial wrapper then only describes
        # the spaces, and `learn` is shared.
        self.on_host = isinstance(env, HostEnvironment)
        self.wrapper = TrialWrapper(env, env.episodes_per_trial)
        self.method = get_method(cfg.method)
        self.agent = Agent(
            cfg.model, self.method, self.wrapper.action_space, self.wrapper.observation_space.shape[0],
            task_dim=env.task_dim, num_cells=env.num_cells,
            image_shape=env.image_shape, inference=cfg.inference,
        )
        self.tx = ppo.make_optimizer(cfg.ppo)
        self.vae_tx = inference.make_vae_optimizer(cfg.inference)
        self.pretrain_updates = pretrain_updates(cfg)

    def init(self, seed: Array, lr: Array) -> RunState:
        """A fresh run. The same seed gives the same network and environments for every lr."""
        init_key, env_key, run_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        num_envs = self.cfg.ppo.num_envs
        if self.on_host:
            carry = host_carry(self.wrapper, self.agent, num_envs)
        else:
            carry = reset_carry(self.wrapper, self.agent, env_key, num_envs)
        params = self.init_params(init_key, carry)
        obs_dim, task_dim = self.wrapper.observation_space.shape[0], self.wrapper.task_dim
        variational = self.method.variational
        trials = TrialBuffer.create(
            self.cfg.inference.buffer_trials if variational else num_envs, num_envs,
            self.wrapper.max_trial_steps if variational else 1, obs_dim, action_feature_dim(self.wrapper.action_space),
            obs_dim, task_dim,
        )
        return RunState(
            params=params,
            opt_state=self.tx.init(params),
            vae_opt_state=self.vae_tx.init(params),
            norms=Normalizers.create(obs_dim, 2 * self.cfg.model.latent_dim, task_dim),
            reward_scaler=ppo.RewardScaler.create(num_envs),
            carry=carry,
            trials=trials,
            key=run_key,
            lr=jnp.asarray(lr, jnp.float32),
            update=jnp.zeros((), jnp.int32),
        )

    def init_params(self, key: Array, carry: EnvCarry):
        """Fresh parameters of every network of the agent."""
        task = carry.trial_state.task
        return self.agent.init(key, carry.hidden, carry.prev_action, carry.prev_reward, carry.obs, carry.reset, task)

    def pretraining(self, state: RunState) -> Array:
        """Whether the update about to happen belongs to multi-task pre-training."""
        return state.update < self.pretrain_updates

    def current_lr(self, state: RunState) -> Array:
        if self.cfg.ppo.lr_schedule == "linear":
            return state.lr * (1.0 - state.update / max(self.cfg.num_updates, 1))
        return state.lr

    def learn(self, state: RunState, rollout: Rollout, carry: EnvCarry, key: Array) -> tuple[RunState, dict]:
        """The PPO update from a collected rollout (shared with host-side collectors)."""
        cfg = self.cfg.ppo
        ppo_key, vae_key, reset_key = jax.random.split(key, 3)
        pretraining = self.pretraining(state)
        reward_scaler, scaled = state.reward_scaler.scale(rollout.reward, rollout.done, cfg.gamma, cfg.reward_clip)
        params, opt_state, stats = ppo.update(
            self.agent, self.tx, cfg, state.params, state.opt_state, state.norms,
            rollout, scaled, self.current_lr(state), ppo_key, grad_info=self.cfg.grad_info,
            use_task=pretraining, aux_weight=self.cfg.inference.aux_weight,
        )
        state = state.replace(params=params, opt_state=opt_state)
        if self.method.variational:
            state, carry, vae_stats = self._train_inference(state, rollout, carry, pretraining, vae_key)
            stats.update(vae_stats)
        # Normalisation statistics change only between updates, so the log-probs stored
        # while acting match those recomputed in the first PPO epoch exactly.
        norms = state.norms.update(rollout.obs, rollout.latent, rollout.task)
        stats["train_reward"] = jnp.mean(rollout.reward)
        state = state.replace(norms=norms, reward_scaler=reward_scaler, carry=carry, update=state.update + 1)
        if self.method.pretrain == "reset":
            state = jax.lax.cond(state.update == self.pretrain_updates, self._reset_policy, lambda s, k: s, state, reset_key)
        return state, stats

    def _train_inference(self, state: RunState, rollout: Rollout, carry: EnvCarry, pretraining: Array, key: Array):
        """File the rollout's finished trials, take the ELBO steps, re-encode the running trials.

        Methods without "++" neither store nor learn from pre-training trajectories.
        """
        learn = ~pretraining if self.method.pretrain == "reset" else jnp.asarray(True)
        a_feat = action_features(self.wrapper.action_space, rollout.action)
        trials = state.trials.add(rollout.obs, a_feat, rollout.reward, rollout.next_obs, rollout.cell,
                                  rollout.cell_hit, rollout.task, rollout.done, store=learn)
        params, vae_opt_state, stats = inference.vae_update(
            self.agent, self.vae_tx, self.cfg.inference, state.params, state.vae_opt_state, state.norms, trials, key,
            enabled=learn,
        )
        # The carried hidden state came from the encoder before this update: recompute it.
        carry = carry.replace(hidden=inference.running_hidden(self.agent, params, trials.running))
        return state.replace(params=params, vae_opt_state=vae_opt_state, trials=trials), carry, stats

    def _reset_policy(self, state: RunState, key: Array) -> RunState:
        """End of pre-training without "++": a freshly initialised policy, keeping the encoder,
        the decoders and the task embedding g (and a fresh PPO optimiser state)."""
        fresh = self.init_params(key, state.carry)
        keep = lambda name: name.startswith(("enc_", "gru", "dec_", "task_embed"))  # noqa: E731
        params = {"params": {name: sub if keep(name) else fresh["params"][name]
                             for name, sub in state.params["params"].items()}}
        return state.replace(params=params, opt_state=self.tx.init(params))

    def train_update(self, state: RunState) -> tuple[RunState, dict]:
        """Collect one rollout and update on it."""
        key, collect_key, update_key = jax.random.split(state.key, 3)
        carry, rollout = collect(
            self.wrapper, self.agent, state.params, state.norms, state.carry, collect_key, self.cfg.ppo.num_steps,
            use_task=self.pretraining(state),
        )
        return self.learn(state.replace(key=key), rollout, carry, update_key)

    def evaluate(self, params, norms: Normalizers, key: Array) -> Array:
        """Mean return of each episode of a trial, (K,), over `eval_trials` fresh tasks.

        Deterministic actions; the hidden state starts at the prior and is never
        reset inside the trial. The meta-episode return is the sum of this vector.
        The meta-policy is evaluated even during pre-training (the reference does so
        too); only the multi-task oracle reads the true task.
        """
        n, k = self.cfg.eval_trials, self.wrapper.episodes_per_trial
        reset_key, run_key = jax.random.split(key)
        carry = reset_carry(self.wrapper, self.agent, reset_key, n)

        def step(loop, key):
            carry, active, returns = loop
            hidden, _, dist, _ = act(self.agent, params, norms, carry)
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
        episode_returns = self.evaluate(state.params, state.norms, eval_key)
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
