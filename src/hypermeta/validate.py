"""Checks of a `TrainConfig` before a run starts: impossible settings are rejected with a
message naming the value and what is allowed (`hypermeta train` and `hypermeta sweep` call
`validate` before creating a run directory; `hypermeta.training.loop.train` calls it first)."""

from __future__ import annotations

import math
import typing

from hypermeta.config import ModelConfig, SequenceName, TrainConfig
from hypermeta.envs.registry import ENVIRONMENTS, make_env
from hypermeta.envs.trial import reports_timeouts
from hypermeta.errors import UsageError
from hypermeta.methods.registry import get_method
from hypermeta.networks.observation import OBS_ENCODERS


def validate(cfg: TrainConfig) -> None:
    """Reject impossible settings with a message naming the value and what is allowed."""
    make_env(cfg.env, physics=cfg.physics)  # an unknown name, or a missing optional extra (ml10), fails before a run dir exists
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
    if p.time_limit == "proper" and not reports_timeouts(make_env(cfg.env)):
        raise UsageError(f"--ppo.time-limit proper: {cfg.env} does not report time limits; use --ppo.time-limit terminal")
    if p.return_reset not in ("all", "own"):
        raise UsageError(f"--ppo.return-reset must be 'all' or 'own', got {p.return_reset!r}")
    if cfg.inference.loss_reduction not in ("reference", "mean"):
        raise UsageError(f"--inference.loss-reduction must be 'reference' or 'mean', got {cfg.inference.loss_reduction!r}")
    if cfg.inference.kl_scale not in ("reference", "trial"):
        raise UsageError(f"--inference.kl-scale must be 'reference' or 'trial', got {cfg.inference.kl_scale!r}")
    m = cfg.model
    for name in ("encoder_state_embed", "encoder_reward_embed", "gru_size", "latent_dim", "policy_state_embed", "policy_latent_embed"):
        if getattr(m, name) < 1:
            raise UsageError(f"--model.{name.replace('_', '-')} must be >= 1, got {getattr(m, name)}")
    if m.encoder_action_embed < 0:
        raise UsageError(f"--model.encoder-action-embed must be >= 0, got {m.encoder_action_embed}")
    if m.obs_encoder not in OBS_ENCODERS:
        raise UsageError(f"--model.obs-encoder must be one of {', '.join(OBS_ENCODERS)}, got {m.obs_encoder!r}")
    if m.obs_encoder == "cnn" and make_env(cfg.env).image_shape is None:
        images = [name for name in ENVIRONMENTS if _image_shape(name) is not None]
        raise UsageError(
            f"--model.obs-encoder cnn needs image observations; {cfg.env!r} has vector observations "
            f"(image environments: {', '.join(images)})"
        )
    _validate_sequence(m)
    if not m.policy_hidden or min(m.policy_hidden) < 1:
        raise UsageError(f"--model.policy-hidden needs one or more positive widths, got {list(m.policy_hidden)}")
    if cfg.parallel_runs < 0:
        raise UsageError(f"--parallel-runs must be >= 0 (0 = auto), got {cfg.parallel_runs}")
    if cfg.eval_interval < 1 or cfg.eval_trials < 1 or cfg.checkpoint_interval < 1:
        raise UsageError("--eval-interval, --eval-trials and --checkpoint-interval must be >= 1")
    _validate_inference(cfg)


def _validate_sequence(m: ModelConfig) -> None:
    """The sequence model's name and sizes."""
    names = typing.get_args(SequenceName)
    if m.sequence not in names:
        raise UsageError(f"--model.sequence must be one of {', '.join(names)}, got {m.sequence!r}")
    for name in ("transformer_dim", "transformer_layers", "transformer_heads", "lru_dim", "lru_state", "lru_layers"):
        if getattr(m, name) < 1:
            raise UsageError(f"--model.{name.replace('_', '-')} must be >= 1, got {getattr(m, name)}")
    if m.transformer_window < 0:
        raise UsageError(f"--model.transformer-window must be >= 0 (0 = the whole trial), got {m.transformer_window}")
    head_dim, rest = divmod(m.transformer_dim, m.transformer_heads)
    if rest or head_dim % 2:  # rotary positions rotate pairs of each head's features
        raise UsageError(f"--model.transformer-dim {m.transformer_dim} must split evenly into "
                         f"--model.transformer-heads {m.transformer_heads} heads of an even width (rotary positions)")


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
