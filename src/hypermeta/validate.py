"""Checks of a `TrainConfig` before a run starts: impossible settings are rejected with a
message naming the value and what is allowed (`hypermeta train` and `hypermeta sweep` call
`validate` before creating a run directory; `hypermeta.training.loop.train` calls it first)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from hypermeta.config import SEQUENCE_CONFIGS, ModelConfig, TrainConfig
from hypermeta.envs.base import Environment, EnvironmentBase
from hypermeta.envs.host import HostEnvironment, JaxOnHost
from hypermeta.envs.registry import ENVIRONMENTS, env_spec, make_env
from hypermeta.errors import UsageError
from hypermeta.methods.registry import get_method
from hypermeta.networks.observation import OBS_ENCODERS
from hypermeta.networks.sequence_registry import probe_sequence_model, sequence_config, sequence_spec
from hypermeta.plugin_loading import one_line


def reports_timeouts(env: EnvironmentBase) -> bool:
    """Whether `env` says which episode ends are time limits (`info["timeout"]`), which
    "proper time limits" need. Host environments always do (gymnasium's `truncated`)."""
    if isinstance(env, JaxOnHost):  # a JAX env stepped in Python: truncated only where it reports timeouts
        return reports_timeouts(env.env)
    if not isinstance(env, Environment):
        return True
    key = jax.eval_shape(jax.random.PRNGKey, 0)  # shapes only: no backend started (a sweep's driver)
    task = jax.eval_shape(env.sample_task, key)

    def one_step(key, task):
        _, state = env.reset(key, task)
        action = env.action_space.sample(key)
        return env.step(key, state, action, task)[4]

    return "timeout" in jax.eval_shape(one_step, key, task)


def validate(cfg: TrainConfig) -> None:
    """Reject impossible settings with a message naming the value and what is allowed."""
    env = make_env(cfg.env, physics=cfg.physics)  # an unknown name, or a missing optional extra (ml10), fails before a run dir exists
    if env_spec(cfg.env).plugin:
        _validate_plugin_env(cfg.env, env)
    get_method(cfg.method)
    p = cfg.ppo
    if cfg.frames <= 0:
        raise UsageError(f"--frames must be positive, got {cfg.frames}")
    if cfg.frames < p.frames_per_update:
        raise UsageError(
            f"--frames {cfg.frames} is less than one update ({p.num_envs} envs x {p.num_steps} steps = {p.frames_per_update} frames)"
        )
    if not cfg.seeds:
        raise UsageError("--seeds needs at least one seed")
    if not cfg.lr or any(not (lr > 0 and math.isfinite(lr)) for lr in cfg.lr):
        raise UsageError(f"--lr values must be positive and finite, got {list(cfg.lr)}")
    for name in ("num_envs", "num_steps", "epochs", "minibatches"):
        if getattr(p, name) < 1:
            raise UsageError(f"--ppo.{name.replace('_', '-')} must be >= 1, got {getattr(p, name)}")
    if not 0 < p.gamma <= 1:
        raise UsageError(f"--ppo.gamma must be in (0, 1], got {p.gamma}")
    if not 0 <= p.gae_lambda <= 1:
        raise UsageError(f"--ppo.gae-lambda must be in [0, 1], got {p.gae_lambda}")
    for name in ("clip", "adam_eps", "encoder_adam_eps", "max_grad_norm", "reward_clip"):
        if not getattr(p, name) > 0:
            raise UsageError(f"--ppo.{name.replace('_', '-')} must be positive, got {getattr(p, name)}")
    for name in ("value_coef", "entropy_coef"):
        if not getattr(p, name) >= 0:
            raise UsageError(f"--ppo.{name.replace('_', '-')} must be >= 0, got {getattr(p, name)}")
    if p.minibatch not in ("transitions", "envs"):
        raise UsageError(f"--ppo.minibatch must be 'transitions' or 'envs', got {p.minibatch!r}")
    if p.minibatch == "envs" and p.num_envs % p.minibatches:
        raise UsageError(f"--ppo.minibatches {p.minibatches} must divide --ppo.num-envs {p.num_envs} (--ppo.minibatch envs)")
    if p.minibatches > p.frames_per_update:
        raise UsageError(f"--ppo.minibatches {p.minibatches} exceeds the {p.frames_per_update} transitions of a rollout")
    if p.time_limit not in ("terminal", "proper"):
        raise UsageError(f"--ppo.time-limit must be 'terminal' or 'proper', got {p.time_limit!r}")
    if p.time_limit == "proper" and not reports_timeouts(env):
        raise UsageError(f"--ppo.time-limit proper: {cfg.env} does not report time limits; use --ppo.time-limit terminal")
    if p.return_reset not in ("all", "own"):
        raise UsageError(f"--ppo.return-reset must be 'all' or 'own', got {p.return_reset!r}")
    if cfg.inference.loss_reduction not in ("reference", "mean"):
        raise UsageError(f"--inference.loss-reduction must be 'reference' or 'mean', got {cfg.inference.loss_reduction!r}")
    if cfg.inference.kl_scale not in ("reference", "trial"):
        raise UsageError(f"--inference.kl-scale must be 'reference' or 'trial', got {cfg.inference.kl_scale!r}")
    m = cfg.model
    for name in ("encoder_state_embed", "encoder_reward_embed", "latent_dim", "policy_state_embed", "policy_latent_embed"):
        if getattr(m, name) < 1:
            raise UsageError(f"--model.{name.replace('_', '-')} must be >= 1, got {getattr(m, name)}")
    if m.encoder_action_embed < 0:
        raise UsageError(f"--model.encoder-action-embed must be >= 0, got {m.encoder_action_embed}")
    if m.obs_encoder not in OBS_ENCODERS:
        raise UsageError(f"--model.obs-encoder must be one of {', '.join(OBS_ENCODERS)}, got {m.obs_encoder!r}")
    if m.obs_encoder == "cnn" and env.image_shape is None:
        images = [name for name in ENVIRONMENTS if _image_shape(name) is not None]
        raise UsageError(
            f"--model.obs-encoder cnn needs image observations; {cfg.env!r} has vector observations "
            f"(image environments: {', '.join(images)})"
        )
    _validate_sequence(m, env)
    if not m.policy_hidden or min(m.policy_hidden) < 1:
        raise UsageError(f"--model.policy-hidden needs one or more positive widths, got {list(m.policy_hidden)}")
    if cfg.parallel_runs < 0:
        raise UsageError(f"--parallel-runs must be >= 0 (0 = auto), got {cfg.parallel_runs}")
    if cfg.eval_interval < 1 or cfg.eval_trials < 1 or cfg.checkpoint_interval < 1:
        raise UsageError("--eval-interval, --eval-trials and --checkpoint-interval must be >= 1")
    _validate_inference(cfg)


def _validate_sequence(m: ModelConfig, env: EnvironmentBase) -> None:
    """The sequence model's name, the built-in models' sizes, a plug-in's options and interface."""
    spec = sequence_spec(m.sequence)  # an unknown name: one line listing the registered ones
    sequence_config(m)  # options of a model without them, or bad KEY=VALUE options
    for model in SEQUENCE_CONFIGS:
        for f in dataclasses.fields(getattr(m, model)):
            value, least = getattr(getattr(m, model), f.name), 0 if (model, f.name) == ("transformer", "window") else 1
            if value < least:
                meaning = " (0 = the whole trial)" if least == 0 else ""
                raise UsageError(f"--model.{model}.{f.name} must be >= {least}{meaning}, got {value}")
    t = m.transformer
    head_dim, rest = divmod(t.dim, t.heads)
    if rest or head_dim % 2:  # rotary positions rotate pairs of each head's features
        raise UsageError(f"--model.transformer.dim {t.dim} must split evenly into "
                         f"--model.transformer.heads {t.heads} heads of an even width (rotary positions)")
    if spec.plugin:  # this package's models are tested; a plug-in is checked over shapes (cheap)
        inputs = m.encoder_state_embed + m.encoder_reward_embed + m.encoder_action_embed
        probe_sequence_model(m, env.episodes_per_trial * env.max_episode_steps, inputs)  # the longest trial


def _validate_plugin_env(name: str, env: EnvironmentBase) -> None:
    """A plug-in environment's declared sizes against what its functions return, over shapes
    only (`jax.eval_shape`: nothing runs, no backend starts), one line per problem."""
    where = f"environment plug-in {name!r}"
    for attr in ("episodes_per_trial", "max_episode_steps"):
        value = getattr(env, attr, None)
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"{where}: {attr} must be a positive int, got {value!r}")
    if isinstance(env, HostEnvironment):
        try:
            task_env = env.make_task_env(env.splits[0])
        except Exception as e:
            raise UsageError(f"{where}: make_task_env({env.splits[0]!r}) raised {one_line(e)}") from e
        try:
            if not callable(getattr(task_env, "sample_task", None)):
                raise UsageError(f"{where}: its task env {type(task_env).__name__} has no task sampler: a host task "
                                 f"env defines sample_task(rng) and task (hypermeta.envs.host)")
        finally:
            getattr(task_env, "close", lambda: None)()  # built for this check only
        return
    assert isinstance(env, Environment)  # registry.check_environment made sure
    obs_shape = tuple(env.observation_space.shape)
    if len(obs_shape) != 1:
        raise UsageError(f"{where}: observation_space.shape must be a vector (n,) (images are flattened, "
                         f"see image_shape), got {obs_shape}")
    key = jax.eval_shape(jax.random.PRNGKey, 0)
    try:
        task = jax.eval_shape(env.sample_task, key)
        obs, state = jax.eval_shape(env.reset, key, task)
        action = jax.eval_shape(env.action_space.sample, key)
        next_obs, next_state, reward, done, info = jax.eval_shape(env.step, key, state, action, task)
    except Exception as e:
        raise UsageError(f"{where}: sample_task/reset/step failed on abstract inputs: {one_line(e)}") from e
    _check_shapes(where, env, (task, obs, next_obs, reward, done, info))
    if jax.tree.structure(next_state) != jax.tree.structure(state):
        raise UsageError(f"{where}: step returns a state structured unlike reset's")


def _check_shapes(where: str, env: Environment, values: tuple) -> None:
    """What `sample_task`, `reset` and `step` returned (shapes and dtypes) against the declared sizes."""
    task, obs, next_obs, reward, done, info = values
    obs_shape = tuple(env.observation_space.shape)
    expected = [("sample_task's task", task, (env.task_dim,)), ("reset's observation", obs, obs_shape),
                ("step's observation", next_obs, obs_shape), ("step's reward", reward, ()), ("step's done", done, ())]
    for what, value, shape in expected:
        if not hasattr(value, "shape") or tuple(value.shape) != shape:
            raise UsageError(f"{where}: {what} has shape {getattr(value, 'shape', type(value).__name__)}, expected "
                             f"{shape} (task_dim {env.task_dim}, observation_space.shape {obs_shape})")
    for what, value in (("task", task), ("observation", obs), ("reward", reward)):
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise UsageError(f"{where}: its {what} must be floating point, got {value.dtype}")
    if done.dtype != jnp.bool_:  # the trial wrapper combines it with & and ~
        raise UsageError(f"{where}: step's done must be a bool, got {done.dtype}")
    if not isinstance(info, dict):
        raise UsageError(f"{where}: step's info must be a dict, got {type(info).__name__}")


def _image_shape(env: str) -> tuple[int, int, int] | None:
    """The image shape of a registered environment (None: vector, or an optional extra is missing)."""
    try:
        return make_env(env).image_shape
    except UsageError:
        return None


def _validate_inference(cfg: TrainConfig) -> None:
    inf = cfg.inference
    for name in ("pretrain_updates", "aux_weight", "elbo_subsample", "kl_weight"):
        if not getattr(inf, name) >= 0:
            raise UsageError(f"--inference.{name.replace('_', '-')} must be >= 0, got {getattr(inf, name)}")
    for name in ("updates", "batch_trials"):
        if getattr(inf, name) < 1:
            raise UsageError(f"--inference.{name.replace('_', '-')} must be >= 1, got {getattr(inf, name)}")
    if not (inf.lr > 0 and math.isfinite(inf.lr)):
        raise UsageError(f"--inference.lr must be positive and finite, got {inf.lr}")
    if inf.resample_decodes and inf.elbo_subsample == 0:
        raise UsageError("--inference.resample-decodes needs --inference.elbo-subsample > 0 (it replaces the "
                         "sub-sampled decodes; without sub-sampling every step is decoded)")
    if inf.buffer_trials < cfg.ppo.num_envs:
        raise UsageError(f"--inference.buffer-trials {inf.buffer_trials} must be >= --ppo.num-envs {cfg.ppo.num_envs}")
    if inf.batch_trials > inf.buffer_trials:  # batches are drawn without replacement
        raise UsageError(f"--inference.batch-trials {inf.batch_trials} must be <= --inference.buffer-trials "
                         f"{inf.buffer_trials}")
    for name in ("reward_decoder", "state_decoder", "task_decoder"):
        widths = getattr(inf, name)
        if not widths or min(widths) < 1:
            raise UsageError(f"--inference.{name.replace('_', '-')} needs one or more positive widths, got {list(widths)}")
