"""One run's training as pure functions of a `RunState`, so runs can be vmapped.

    learner = Learner(cfg)                          # or Learner(cfg, env=..., collector=...)
    state = learner.init(seed, lr)
    state, stats = learner.learn(state, rollout, carry, key)   # the PPO (+ ELBO) update
    chunk = learner.compile_chunk()                 # chunk(states, n): n updates, one evaluation

The learner owns the agent, the optimisers and the update; a collector
(`training.collectors`: JAX environments in the compiled program, gymnasium environments
stepped in Python) produces the rollouts and evaluations, driven by the learner's pure
functions (`steps`: the agent, `learn`, `pretraining`), never by the learner itself. With a
JAX collector every (seed, lr) pair trains in one compiled program, and `train_update`,
`train_chunk` and `evaluate` are the collector's pure steps.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from hypermeta.config import TrainConfig
from hypermeta.envs.base import Array, EnvironmentBase
from hypermeta.envs.registry import make_env
from hypermeta.envs.trial import TrialWrapper
from hypermeta.methods.registry import get_method
from hypermeta.networks.agent import PARAM_GROUPS, Agent, action_feature_dim
from hypermeta.training import inference, ppo
from hypermeta.training.collectors.base import Collector, LearnerSteps
from hypermeta.training.collectors.registry import make_collector
from hypermeta.training.conditioning import Normalizers
from hypermeta.training.experience import EnvCarry, Rollout, encoder_inputs
from hypermeta.training.run_state import RunState
from hypermeta.training.trial_buffer import TrialBuffer


def pretrain_updates(cfg: TrainConfig) -> int:
    """Updates of the budget spent in multi-task pre-training (0 for methods without it)."""
    return get_method(cfg.method).pretrain.updates(cfg)


class Learner:
    """Static pieces of a training configuration (env, agent, optimizers, collector) and the pure update."""

    def __init__(self, cfg: TrainConfig, env: EnvironmentBase | None = None, collector: Collector | None = None):
        """`env`: the environment to train on (default: the one registered as `cfg.env`);
        `collector`: how rollouts are collected (default: `make_collector` for `env`'s kind)."""
        self.cfg = cfg
        self.env = env = make_env(cfg.env, physics=cfg.physics) if env is None else env
        self.wrapper = TrialWrapper(env, env.episodes_per_trial)
        self.method = get_method(cfg.method)
        self.agent = Agent(
            cfg.model, self.method, self.wrapper.action_space, self.wrapper.observation_space.shape[0],
            task_dim=env.task_dim, num_cells=env.num_cells,
            image_shape=env.image_shape, inference=cfg.inference, trial_steps=self.wrapper.max_trial_steps,
        )
        self.tx = ppo.make_optimizer(cfg.ppo)
        self.vae_tx = inference.make_vae_optimizer(cfg.inference)
        self.pretrain_updates = pretrain_updates(cfg)
        self.collector: Collector = make_collector(env, self.wrapper, cfg) if collector is None else collector

    def init(self, seed: Array, lr: Array) -> RunState:
        """A fresh run. The same seed gives the same network and environments for every lr."""
        init_key, env_key, run_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        num_envs = self.cfg.ppo.num_envs
        carry = self.collector.initial_carry(self.agent, env_key, num_envs)
        params = self.init_params(init_key, carry)
        obs_dim, task_dim = self.wrapper.observation_space.shape[0], self.wrapper.task_dim
        buffer_trials, trial_steps = self.method.encoder.buffer_shape(self.cfg.inference, num_envs,
                                                                      self.wrapper.max_trial_steps)
        trials = TrialBuffer.create(buffer_trials, num_envs, trial_steps, obs_dim,
                                    action_feature_dim(self.wrapper.action_space), obs_dim, task_dim)
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

    def init_params(self, key: Array, carry: EnvCarry) -> dict:
        """Fresh parameters of every network of the agent."""
        return self.agent.init(key, encoder_inputs(carry), carry.trial_state.task)

    def pretraining(self, state: RunState) -> Array:
        """Whether the update about to happen belongs to multi-task pre-training."""
        return state.update < self.pretrain_updates

    def current_lr(self, state: RunState) -> Array:
        if self.cfg.ppo.lr_schedule == "linear":
            return state.lr * (1.0 - state.update / max(self.cfg.num_updates, 1))
        return state.lr

    def learn(self, state: RunState, rollout: Rollout, carry: EnvCarry, key: Array) -> tuple[RunState, dict]:
        """The PPO update from a collected rollout (every collector calls it)."""
        cfg = self.cfg.ppo
        ppo_key, vae_key, reset_key = jax.random.split(key, 3)
        pretraining = self.pretraining(state)
        reward_scaler, scaled = state.reward_scaler.scale(rollout.reward, rollout.done, cfg.gamma, cfg.reward_clip,
                                                          cfg.return_reset)
        params, opt_state, stats = ppo.update(
            self.agent, self.tx, cfg, state.params, state.opt_state, state.norms,
            rollout, scaled, self.current_lr(state), ppo_key, grad_info=self.cfg.grad_info,
            use_task=pretraining, extra_loss=self.method.encoder.extra_loss(self.agent, self.cfg.inference.aux_weight),
        )
        # The encoder's own objective (the ELBO of VariBAD-type methods; nothing for others).
        params, vae_opt_state, trials, carry, encoder_stats = self.method.encoder.train(
            self.agent, self.vae_tx, self.cfg.inference, params, state.vae_opt_state, state.norms, state.trials,
            rollout, carry, self.method.pretrain.inference_learns(pretraining), vae_key,
        )
        stats.update(encoder_stats)
        state = state.replace(params=params, opt_state=opt_state, vae_opt_state=vae_opt_state, trials=trials)
        # Normalisation statistics change only between updates, so the log-probs stored
        # while acting match those recomputed in the first PPO epoch exactly.
        norms = state.norms.update(rollout.obs, rollout.latent, rollout.task)
        stats["train_reward"] = jnp.mean(rollout.reward)
        state = state.replace(norms=norms, reward_scaler=reward_scaler, carry=carry, update=state.update + 1)
        state = self.method.pretrain.after_update(state, state.update, self.pretrain_updates, self._reset_policy,
                                                  reset_key)
        return state, stats

    def _reset_policy(self, state: RunState, key: Array) -> RunState:
        """End of pre-training without "++" (`methods.pretraining`): fresh parameters for the groups marked so in
        PARAM_GROUPS (the policy), keeping the others (the encoder, the decoders and the task
        embedding g), and a fresh PPO optimiser state."""
        fresh = self.init_params(key, state.carry)
        params = {name: fresh[name] if PARAM_GROUPS[name].fresh_after_pretraining else sub
                  for name, sub in state.params.items()}
        return state.replace(params=params, opt_state=self.tx.init(params))

    # --- the collector's steps ---------------------------------------------------------------

    @property
    def steps(self) -> LearnerSteps:
        """The pure functions a collector drives: the agent, `learn` and `pretraining`."""
        return LearnerSteps(agent=self.agent, learn=self.learn, pretraining=self.pretraining)

    def compile_chunk(self, parallel_runs: int = 0) -> Callable:
        """`chunk(states, num_updates)`: that many updates of every run (a leading run axis),
        then one evaluation; metrics are chunk means. From the collector (for JAX environments,
        one jitted program; `parallel_runs` runs side by side, 0 = all)."""
        return self.collector.compile_chunk(self.steps, parallel_runs)

    def train_update(self, state: RunState) -> tuple[RunState, dict]:
        """Collect one rollout and update on it (JAX collector)."""
        return self.collector.train_update(self.steps, state)

    def train_chunk(self, state: RunState, num_updates: int | Array) -> tuple[RunState, dict]:
        """`num_updates` updates then one evaluation (JAX collector)."""
        return self.collector.train_chunk(self.steps, state, num_updates)

    def evaluate(self, params, norms: Normalizers, key: Array) -> Array:
        """Mean return of each episode of a trial, (K,), over `eval_trials` fresh tasks (JAX collector)."""
        return self.collector.evaluate(self.agent, params, norms, key)["episode_returns"]

    def init_runs(self, seeds: list[int], lrs: list[float]) -> RunState:
        """Initial states of all runs stacked on a leading axis.

        Runs are initialised one by one and stacked: a vmapped `Agent.init` over
        seeds was seen to hang XLA:CPU (jax 0.10.2). Initialisation is cheap.
        """
        init = jax.jit(self.init)
        states = [init(jnp.asarray(s), jnp.asarray(lr, jnp.float32)) for s, lr in zip(seeds, lrs, strict=True)]
        # One jitted stack: ~50 separate per-leaf stacks cost ~0.9 s of dispatch in every process.
        return jax.jit(lambda *runs: jax.tree.map(lambda *xs: jnp.stack(xs), *runs))(*states)
