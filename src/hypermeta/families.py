"""The paper's settings per environment family, and the defaults of a run from them.

Each environment names its family in the registry (`hypermeta.envs.registry.EnvSpec.family`,
a key of `FAMILIES`); `family_defaults(env)` returns that family's `TrainConfig` with `env`
filled in and `method_defaults(env, method)` resolves what depends on the method, before
command-line options override field by field (original-implementation.md 1.1 and 3).

Imports: `hypermeta.config` (the schema, no hypermeta imports) <- `hypermeta.families` ->
`hypermeta.envs.registry`, `hypermeta.methods.registry`; the environments do not depend on
PPO settings.
"""

from __future__ import annotations

import dataclasses

from hypermeta.config import InferenceConfig, ModelConfig, PPOConfig, TrainConfig
from hypermeta.envs.registry import env_spec
from hypermeta.errors import UsageError
from hypermeta.methods.registry import get_method, method_key
from hypermeta.plugin_loading import load_entry_points

GRID_WORLD = TrainConfig(model=ModelConfig(policy_state_embed=25))
"""Grid-World family (all three variants): 16 x 60 frames per update, 4M frames, eval every 5.
The end-to-end methods' policy state embedding is 25: the paper's Grid comparison of RNN, RNN+S
and RNN+HN tuned it over 5 25 125 625 (appendix 8.2) and 25 won for RNN+S and RNN+HN
(experiment_sets/models.py l.564); the other methods keep 256 (`model_for_method`)."""


MC_LS = TrainConfig(
    frames=60_000_000,
    seeds=(73, 20, 3, 99),
    eval_interval=10,
    model=ModelConfig(encoder_action_embed=8, encoder_reward_embed=8),
    ppo=PPOConfig(num_steps=800, lr_schedule="linear"),
    inference=InferenceConfig(buffer_trials=1_000, elbo_subsample=50, resample_decodes=True),
)
"""MC-LS family: 16 x 800 frames per update, 60M frames, lr decayed linearly to 0, four seeds,
action and reward embeddings of 8; clip 0.05, entropy 0.1, gamma = lambda = 0.95, Adam eps
1e-5 as on Grid. The ELBO draws 50 terms per trial (the reference's sub-sampling) and keeps
1,000 trials: a trial of 400 views of 300 values is 1,000x a grid trial."""

MC_LS_CNN = dataclasses.replace(MC_LS, model=dataclasses.replace(MC_LS.model, obs_encoder="cnn"))
"""MC-LS on image observations (mc-ls-42): MC-LS's settings with the CNN observation
encoder (`ModelConfig.obs_encoder` "cnn") in place of the linear layer."""


_MUJOCO_PPO = PPOConfig(
    num_steps=400, clip=0.1, entropy_coef=0.01, gamma=0.97, gae_lambda=0.9, adam_eps=1e-8, time_limit="proper"
)
_MUJOCO_INFERENCE = InferenceConfig(
    pretrain_updates=563, kl_weight=0.1, updates=1, batch_trials=10, buffer_trials=10_000,
    elbo_subsample=50, reward_decoder=(64, 32), task_decoder=(64, 32),
)

CHEETAH = TrainConfig(
    frames=75_000_000,
    eval_interval=25,
    model=ModelConfig(encoder_action_embed=16, encoder_reward_embed=16),
    ppo=_MUJOCO_PPO,
    inference=_MUJOCO_INFERENCE,
)
"""Cheetah-Dir / Cheetah-Vel: 16 x 400 frames per update (two 200-step trials), 2 epochs,
4 minibatches, clip 0.1, entropy 0.01, gamma 0.97, lambda 0.9, Adam eps 1e-8, 75M frames,
eval every 25 updates; encoder embeddings 32/16/16; VariBAD kl 0.1, 1 ELBO update of 10
trials per PPO update, 10k trials kept, 50 sub-sampled ELBO terms; 563 pre-training updates."""

ANT = dataclasses.replace(
    CHEETAH,
    model=dataclasses.replace(CHEETAH.model, policy_latent_embed=10),
    ppo=dataclasses.replace(_MUJOCO_PPO, num_steps=200, minibatches=1),
)
"""Ant-Dir: as Cheetah but 16 x 200 frames per update, 1 minibatch, latent projection 10."""

WALKER = dataclasses.replace(
    CHEETAH,
    model=ModelConfig(encoder_action_embed=32, encoder_reward_embed=32, latent_dim=10),
    ppo=dataclasses.replace(_MUJOCO_PPO, num_steps=200, minibatches=2, clip=0.05),
    inference=dataclasses.replace(_MUJOCO_INFERENCE, kl_weight=1.0, decode_reward=False, decode_state=True),
)
"""Walker: 16 x 200 frames per update, 2 minibatches, clip 0.05, latent 10, embeddings
32/32/32; VariBAD decodes the next state instead of the reward, kl 1."""


ML10 = TrainConfig(
    frames=100_000_000,
    eval_interval=25,
    eval_trials=10,
    model=ModelConfig(encoder_action_embed=16, encoder_reward_embed=16),
    ppo=PPOConfig(num_envs=8, num_steps=600, minibatches=8, clip=0.1, entropy_coef=0.001, gamma=0.97, gae_lambda=0.9,
                  adam_eps=1e-8, reward_clip=1e5, time_limit="proper"),
    inference=InferenceConfig(pretrain_updates=563, kl_weight=1.0, updates=3, batch_trials=10, buffer_trials=10_000,
                              elbo_subsample=50, decode_state=True, reward_decoder=(128, 64, 32),
                              state_decoder=(128, 64, 32), task_decoder=(64, 32)),
)
"""Meta-World ML10: 8 x 600 frames per update (trials of 2 x 500 steps span rollouts), 2
epochs, 8 minibatches, clip 0.1, entropy 0.001, gamma 0.97, lambda 0.9, Adam eps 1e-8, reward
clip 1e5, 100M frames, eval every 25 updates on 10 trials of the train classes and 10 of
the test classes (1 and 2 per class; 20,000 steps, a sixth of the 25 updates'); encoder embeddings 32/16/16; VariBAD decodes reward
and next state with [128, 64, 32] each, kl 1, 3 ELBO updates of 10 trials per PPO update."""


_PUREJAXRL_PPO = PPOConfig(clip=0.2, entropy_coef=0.01, gamma=0.99, gae_lambda=0.95, adam_eps=1e-8)

GYMNAX = TrainConfig(
    frames=10_000_000,
    eval_interval=10,
    model=ModelConfig(encoder_action_embed=8),
    ppo=dataclasses.replace(_PUREJAXRL_PPO, num_steps=200),
)
"""gymnax environments (`gymnax:NAME`; not in the paper): 16 x 200 frames per update (one
MetaMaze trial), 2 epochs, 4 minibatches; clip 0.2, entropy 0.01, gamma 0.99, lambda 0.95,
Adam eps 1e-8 (the PPO values of gymnax's and XLand's PureJaxRL baselines); the previous
action is embedded (8); 10M frames, evaluation every 10 updates. Not tuned."""

XLAND = TrainConfig(
    frames=100_000_000,
    eval_interval=25,
    model=ModelConfig(encoder_state_embed=64, encoder_action_embed=16),
    ppo=dataclasses.replace(_PUREJAXRL_PPO, num_steps=256, epochs=1),
)
"""XLand-MiniGrid (`xland:ENV_ID`; not in the paper): 16 x 256 frames per update, 1 epoch of
4 minibatches (XLand's RL^2 script: 1 epoch), clip 0.2, entropy 0.01, gamma 0.99, lambda
0.95, Adam eps 1e-8 (that script's values); previous action embedded in 16 as there, the
629-value one-hot view in 64; 100M frames (that script's default budget). A trial of 10
episodes of up to 243 steps spans rollouts, so evaluations (16 trials each) come every 25
updates. Not tuned."""


GENERIC = dataclasses.replace(
    CHEETAH,
    frames=10_000_000,
    eval_interval=10,
    ppo=dataclasses.replace(_MUJOCO_PPO, num_steps=200, time_limit="terminal"),
    inference=dataclasses.replace(_MUJOCO_INFERENCE, pretrain_updates=150),
)
"""Environments of your own that name no family (`hypermeta.plugins.register_env`, `--env
MODULE:FACTORY`; not in the paper, not tuned). Derived from the Cheetah family, the paper's
least environment-specific settings: the encoder embeds the previous action and reward
(32/16/16; Grid-World's drop the action, which only suits its 5 known moves), entropy 0.01
suits discrete and Gaussian policies alike (Grid-World's 0.1 is for 5 actions), and its
gamma 0.97, lambda 0.9, clip 0.1, 2 epochs of 4 minibatches and VariBAD settings were tuned
on tasks of a few hundred steps. Changed for an unknown environment: 16 x 200 frames per
update (Ant's and Walker's rollouts: more updates from a small budget), trial ends are true
ends (`time_limit` "terminal": "proper" needs `info["timeout"]`, which an environment may not
report), 10M frames with an evaluation every 10 updates, and 150 pre-training updates, the
same 5% of the budget as Cheetah's 563 of 75M frames. Override any of them on the command
line, or register a family of your own (`hypermeta.plugins.register_family`)."""


FAMILIES: dict[str, TrainConfig] = {
    "grid-world": GRID_WORLD,
    "mc-ls": MC_LS,
    "mc-ls-cnn": MC_LS_CNN,
    "cheetah": CHEETAH,
    "ant": ANT,
    "walker": WALKER,
    "ml10": ML10,
    "gymnax": GYMNAX,
    "xland": XLAND,
    "generic": GENERIC,
}
"""Family name (`EnvSpec.family`) -> the paper's settings for its environments."""


def family_defaults(env: str) -> TrainConfig:
    """The paper's settings for `env`'s family, with `env` filled in."""
    family = env_spec(env).family
    if family not in FAMILIES:
        load_entry_points()  # an installed plug-in may register it
    if family not in FAMILIES:  # a plug-in naming a family that no plug-in registered
        raise UsageError(f"environment {env!r} names the family {family!r}, which is not registered; "
                         f"families: {', '.join(FAMILIES)}")
    return dataclasses.replace(FAMILIES[family], env=env)


def method_defaults(env: str, method: str) -> TrainConfig:
    """The paper's settings for `method` on `env`: its family's, with the method-dependent
    defaults resolved (`model_for_method`: the policy state embedding) and the method
    stored under its canonical name."""
    base = family_defaults(env)
    name = method_key(method)
    return dataclasses.replace(base, method=name, model=model_for_method(base.model, name))


def model_for_method(model: ModelConfig, method: str) -> ModelConfig:
    """A family's sizes as `method` uses them by default.

    A family's `policy_state_embed` is its end-to-end methods' size (RNN+S, RNN+HN and the
    RNN + task-inference combinations). The authors build every method with a separately
    trained encoder or none (VI, VI+HN, TI*, BI++HN, Multi+HN) with the "XL" policy, state
    embedding 256, on every environment (experiment_sets/models.py l.558-589); only their
    end-to-end models were re-sized on Grid-World (models.py l.564). Apply it to family
    defaults, before command-line options (`method_defaults`)."""
    if get_method(method).encoder.trained_by_ppo:
        return model
    return dataclasses.replace(model, policy_state_embed=ModelConfig.policy_state_embed)  # the XL 256
