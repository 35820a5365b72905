"""Every knob in one place: model sizes, PPO settings and the run, with the paper's defaults.

Defaults differ per environment family (original-implementation.md 1.1 and 3);
`family_defaults(env)` returns the family's `TrainConfig`, which the command line
then overrides field by field (`--ppo.clip 0.1`, `--model.latent-dim 10`, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal


ObsEncoder = Literal["mlp", "cnn"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the trajectory encoder and of the policy."""

    obs_encoder: ObsEncoder = "mlp"
    """First layer over observations, in the encoder and the policy: "mlp" (linear over the
    flattened vector, the authors' choice everywhere) or "cnn" (a small CNN over an image
    environment's view; `hypermeta.networks.observation`)."""
    encoder_state_embed: int = 32
    """ReLU embedding of the observation fed to the GRU."""
    encoder_action_embed: int = 0
    """ReLU embedding of the previous action (0: actions are not encoded, as on Grid)."""
    encoder_reward_embed: int = 8
    """ReLU embedding of the previous reward."""
    gru_size: int = 256
    latent_dim: int = 5
    """The encoder's linear head outputs 2 * latent_dim features (the reference's [mean, logvar])."""
    policy_state_embed: int = 256
    """tanh embedding of the normalised state for the policy (every method but RNN, whose policy
    never sees the state). Default 256, the authors' "XL" policy; 25 for the end-to-end methods
    on the grid-worlds (RNN+S, RNN+HN, ...: the size the paper's Grid comparison used, tuned over
    5 25 125 625). Methods without an end-to-end encoder (VI, TI, BI, Multi) default to 256
    everywhere (`for_method`)."""
    policy_latent_embed: int = 25
    """tanh projection of the latent: the hypernetwork's input for +HN methods."""
    policy_hidden: tuple[int, ...] = (256, 128)
    """Hidden layers of the actor and the critic base networks (tanh)."""

    def for_method(self, method: str) -> "ModelConfig":
        """A family's sizes as `method` uses them by default.

        A family's `policy_state_embed` is its end-to-end methods' size (RNN+S, RNN+HN and the
        RNN + task-inference combinations). The authors build every method with a separately
        trained encoder or none (VI, VI+HN, TI*, BI++HN, Multi+HN) with the "XL" policy, state
        embedding 256, on every environment (experiment_sets/models.py l.558-589); only their
        end-to-end models were re-sized on Grid-World (models.py l.564). Apply it to family
        defaults, before command-line options (`method_defaults`)."""
        from hypermeta.methods.registry import get_method

        if get_method(method).encoder == "rl":
            return self
        return dataclasses.replace(self, policy_state_embed=ModelConfig.policy_state_embed)  # the XL 256


@dataclass(frozen=True)
class PPOConfig:
    """Recurrent PPO over trials; defaults are the reference's Grid-World values."""

    num_envs: int = 16
    num_steps: int = 60
    """Steps per environment per update; the hidden state is carried across rollouts."""
    epochs: int = 2
    minibatches: int = 4
    """Minibatches per epoch (the reference's `ppo_num_minibatch`)."""
    minibatch: Literal["transitions", "envs"] = "transitions"
    """How an epoch is split into minibatches. "transitions" (the reference's): random
    subsets of all num_envs x num_steps transitions, the encoder replayed over the whole
    rollout before each minibatch step. "envs": whole sequences of num_envs / minibatches
    environments per minibatch (cheaper replay; each Adam step sees fewer tasks)."""
    clip: float = 0.05
    """PPO ratio clip; also the value-clip range."""
    value_coef: float = 0.5
    entropy_coef: float = 0.1
    gamma: float = 0.95
    gae_lambda: float = 0.95
    adam_eps: float = 1e-5
    """Adam eps of the actor-critic (the reference's policy optimiser)."""
    encoder_adam_eps: float = 1e-8
    """Adam eps of the trajectory encoder where PPO trains it (the reference's encoder
    optimiser is a separate torch Adam with its default eps)."""
    max_grad_norm: float = 0.5
    """Clipped separately for the encoder and for the actor-critic, as in the reference."""
    reward_clip: float = 10.0
    """Rewards for PPO are divided by the running std of the discounted return, then clipped."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    time_limit: Literal["terminal", "proper"] = "terminal"
    """A trial that ends at a time limit: "terminal" (a true end: nothing is bootstrapped) or
    "proper" (the reference's `use_proper_time_limits` on MuJoCo and ML10: the timeout step's
    advantage is 0 and its value target its own value). Only trial ends are affected:
    timeouts of episodes inside a trial are never cut (original-implementation.md 7.3)."""

    @property
    def frames_per_update(self) -> int:
        return self.num_envs * self.num_steps


@dataclass(frozen=True)
class InferenceConfig:
    """Task inference and VariBAD (the VI / TI / BI / Multi methods and the end-to-end + TI
    combinations); end-to-end methods ignore it. Defaults: the reference's Grid-World values
    (original-implementation.md 2.2 and 2.3)."""

    pretrain_updates: int = 100
    """Multi-task pre-training updates for TI-type methods, taken out of the same frame
    budget (100 on grid-worlds, 563 on MuJoCo)."""
    aux_weight: float = 0.1
    """Weight of the task-inference loss added to PPO by the end-to-end + TI methods."""
    lr: float = 1e-3
    """Adam learning rate of the variational encoder and the decoders (lr_vae)."""
    updates: int = 3
    """ELBO updates per PPO update."""
    batch_trials: int = 25
    """Trials per ELBO update, sampled from the trial buffer."""
    buffer_trials: int = 5_000
    """Completed trials kept for the ELBO (the reference keeps 100k on Grid, i.e. all)."""
    elbo_subsample: int = 0
    """Random ELBO terms and decode steps per trial, drawn with replacement within each
    trial's real length (0 = all; the reference uses 50 on MuJoCo and MC-LS)."""
    resample_decodes: bool = False
    """With `elbo_subsample`: decode as many steps per ELBO term as the batch's longest
    trial has, drawn with replacement within each trial (the reference's
    `vae_resample_decodes`, MC-LS), instead of `elbo_subsample` of them."""
    kl_weight: float = 1.0
    loss_reduction: Literal["reference", "mean"] = "reference"
    """How the ELBO's terms are reduced over the trials of a batch. "reference": the
    reconstruction terms are averaged over trials, the KL and task-inference terms summed
    over them (VariBAD's `compute_loss`; the paper's kl_weight and task-inference
    coefficients were tuned with it). "mean": every term averaged over trials."""
    decode_reward: bool = True
    """Reconstruct rewards: Bernoulli per cell on grid-worlds, regression elsewhere."""
    decode_state: bool = False
    """Reconstruct next observations (the reference's Walker and ML10)."""
    reward_decoder: tuple[int, ...] = (32, 32)
    state_decoder: tuple[int, ...] = (256, 128)
    task_decoder: tuple[int, ...] = (32, 32)


@dataclass(frozen=True)
class TrainConfig:
    """One `hypermeta train` invocation: one env, one method, seeds x learning rates."""

    env: str = "grid-world"
    """Environment name (one of those listed above)."""
    method: str = "rnn-hn"
    """Method name, e.g. rnn, rnn-s, rnn-hn, rnn-hn-kaiming (the paper's spellings work too)."""
    frames: int = 4_000_000
    """Environment frames per run (the paper: 4M on grid-worlds)."""
    seeds: tuple[int, ...] = (73,)
    """Seeds; every seed x learning-rate pair is one run, all trained in one compiled program."""
    lr: tuple[float, ...] = (3e-4,)
    """Policy learning rates (the paper sweeps 3e-3 1e-3 3e-4 1e-4 3e-5)."""
    eval_interval: int = 5
    """Updates between evaluations (one metrics.csv row per run each time)."""
    eval_trials: int = 16
    """Fresh trials per evaluation (deterministic actions)."""
    checkpoint_interval: int = 100
    """Updates between checkpoints (rounded up to a multiple of eval_interval)."""
    grad_info: bool = False
    """Log the latent-gradient analysis of the paper's Figure 11 (latent_grad_norm,
    state_grad_norm, latent_norm, state_norm) in metrics.csv."""
    parallel_runs: int = 0
    """Runs vmapped side by side; the others follow in turn in the same compiled program.
    0 = auto: all of them on a GPU/TPU, 1 on a CPU (there, vmapping the GRU of many runs
    is memory-bound: 15 RNN runs side by side are slower than one after another)."""
    vector_env: Literal["sync", "async"] = "sync"
    """Environments stepped in Python (ml10): gymnasium's SyncVectorEnv steps them one after
    another in this process; "async" (AsyncVectorEnv) gives each its own process. The JAX
    environments ignore it."""
    model: ModelConfig = field(default_factory=ModelConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    @property
    def num_updates(self) -> int:
        return self.frames // self.ppo.frames_per_update

    @property
    def runs(self) -> list[tuple[int, float]]:
        """(seed, lr) of every run, in the order of the vmapped run axis."""
        return [(s, lr) for lr in self.lr for s in self.seeds]

    def differences(self, other: "TrainConfig") -> list[str]:
        """Fields that differ from `other`, ignoring parallel_runs and vector_env (they change
        speed, not results)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in ("parallel_runs", "vector_env") and mine.get(k) != theirs.get(k)]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: dict) -> "TrainConfig":
        data = dict(data)
        model_data = data.pop("model")
        model = ModelConfig(**{**model_data, "policy_hidden": tuple(model_data["policy_hidden"])})
        ppo = PPOConfig(**data.pop("ppo"))
        inference_data = data.pop("inference", {})
        inference = InferenceConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in inference_data.items()})
        return TrainConfig(
            **{**data, "seeds": tuple(data["seeds"]), "lr": tuple(data["lr"])}, model=model, ppo=ppo, inference=inference
        )


GRID_WORLD = TrainConfig(model=ModelConfig(policy_state_embed=25))
"""Grid-World family (all three variants): 16 x 60 frames per update, 4M frames, eval every 5.
The end-to-end methods' policy state embedding is 25: the paper's Grid comparison of RNN, RNN+S
and RNN+HN tuned it over 5 25 125 625 (appendix 8.2) and 25 won for RNN+S and RNN+HN
(experiment_sets/models.py l.564); the other methods keep 256 (`ModelConfig.for_method`)."""


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


def family_defaults(env: str) -> TrainConfig:
    """The paper's settings for `env`'s family, with `env` filled in."""
    from hypermeta.envs.registry import env_spec

    return dataclasses.replace(env_spec(env).family, env=env)


def method_defaults(env: str, method: str) -> TrainConfig:
    """The paper's settings for `method` on `env`: its family's, with the method-dependent
    defaults resolved (`ModelConfig.for_method`: the policy state embedding) and the method
    stored under its canonical name."""
    from hypermeta.methods.registry import get_method

    base = family_defaults(env)
    name = get_method(method).name
    return dataclasses.replace(base, method=name, model=base.model.for_method(name))
