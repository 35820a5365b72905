"""Every knob in one place: model sizes, PPO settings and the run, with the paper's defaults.

Defaults differ per environment family (original-implementation.md 1.1 and 3);
`hypermeta.families.family_defaults(env)` returns the family's `TrainConfig`, which the
command line then overrides field by field (`--ppo.clip 0.1`, `--model.latent-dim 10`, ...).
This module is the schema only and imports nothing from hypermeta."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

ObsEncoder = Literal["mlp", "cnn"]
ReturnReset = Literal["all", "own"]
KLScale = Literal["reference", "trial"]


# Each built-in sequence model owns its sizes (`ModelConfig.gru`, `.lstm`, `.transformer`, `.lru`;
# `--model.transformer.dim 64`). They live here, not beside their modules in `hypermeta.networks`,
# because this module is the schema and imports nothing from hypermeta. A plug-in's model has
# its own config dataclass, set with `--model.sequence-options KEY=VALUE`
# (`hypermeta.plugins.register_sequence_model`).


@dataclass(frozen=True)
class GRUConfig:
    """The paper's GRU (`hypermeta.networks.sequence.GRU`)."""

    size: int = 256
    """Hidden units."""


@dataclass(frozen=True)
class LSTMConfig:
    """The LSTM (`hypermeta.networks.sequence.LSTM`)."""

    size: int = 256
    """Hidden units (and cell units)."""


@dataclass(frozen=True)
class TransformerConfig:
    """The causal transformer over the trial (`hypermeta.networks.transformer.Transformer`)."""

    dim: int = 96
    """Width of the residual stream and output."""
    layers: int = 2
    """Pre-norm blocks (attention + 4x MLP)."""
    heads: int = 4
    """Attention heads (must divide dim into heads of an even width)."""
    window: int = 0
    """Steps each step attends to within its trial, itself included (a key/value cache of
    that many steps is carried across rollouts). 0: the whole trial (the environment's
    longest trial), so attention sees everything an RNN could."""


@dataclass(frozen=True)
class LRUConfig:
    """Linear recurrent units (`hypermeta.networks.linear_recurrence.LRU`)."""

    dim: int = 128
    """Width of the blocks' residual stream and output."""
    state: int = 128
    """Complex state units per block."""
    layers: int = 2
    """Blocks (LayerNorm -> LRU -> GELU -> GLU, residual)."""


SEQUENCE_CONFIGS: dict[str, type] = {"gru": GRUConfig, "lstm": LSTMConfig, "transformer": TransformerConfig,
                                     "lru": LRUConfig}
"""Built-in sequence model -> its config dataclass, held in the `ModelConfig` field of the same name."""

OLD_SEQUENCE_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "gru_size": (("gru", "size"), ("lstm", "size")),  # the LSTM used the GRU's size
    "transformer_dim": (("transformer", "dim"),),
    "transformer_layers": (("transformer", "layers"),),
    "transformer_heads": (("transformer", "heads"),),
    "transformer_window": (("transformer", "window"),),
    "lru_dim": (("lru", "dim"),),
    "lru_state": (("lru", "state"),),
    "lru_layers": (("lru", "layers"),),
}
"""Flat `ModelConfig` keys of run directories written before each sequence model owned its
config -> where `TrainConfig.from_dict` puts their values (model field, config field)."""


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
    sequence: str = "gru"
    """The trajectory encoder's sequence model (`hypermeta.networks.sequence_registry.SEQUENCE_MODELS`):
    "gru" (the paper's), "lstm", "transformer" (causal, pre-norm, attention within the current
    trial) or "lru" (linear recurrent units, a parallel scan in the replay); a registered
    plug-in's name, or MODULE:CLASS (`hypermeta.plugins`). Orthogonal to the method:
    `--method rnn-hn --model.sequence transformer` is Transformer+HN. Default sizes are near
    the GRU's parameter count with Grid-World's inputs (GRU 228k; LSTM 304k, transformer
    228k, LRU 204k)."""
    gru: GRUConfig = field(default_factory=GRUConfig)
    lstm: LSTMConfig = field(default_factory=LSTMConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    lru: LRUConfig = field(default_factory=LRUConfig)
    sequence_options: tuple[str, ...] = field(default=(), metadata={"key_values": True})
    """KEY=VALUE settings of a plug-in sequence model's own config dataclass (e.g.
    `--model.sequence-options width=64 depth=2`; in Python also a dict, {"width": 64}); stored with the run. The built-in models'
    sizes are their own fields: --model.gru.*, --model.lstm.*, --model.transformer.*, --model.lru.*."""
    latent_dim: int = 5
    """The encoder's linear head outputs 2 * latent_dim features (the reference's [mean, logvar])."""
    policy_state_embed: int = 256
    """tanh embedding of the normalised state for the policy (every method but RNN, whose policy
    never sees the state). Default 256, the authors' "XL" policy; 25 for the end-to-end methods
    on the grid-worlds (RNN+S, RNN+HN, ...: the size the paper's Grid comparison used, tuned over
    5 25 125 625). Methods without an end-to-end encoder (VI, TI, BI, Multi) default to 256
    everywhere (`hypermeta.families.model_for_method`)."""
    policy_latent_embed: int = 25
    """tanh projection of the latent: the hypernetwork's input for +HN methods."""
    policy_hidden: tuple[int, ...] = (256, 128)
    """Hidden layers of the actor and the critic base networks (tanh)."""


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
    return_reset: ReturnReset = "all"
    """Which running discounted returns of the reward scaler a trial's end zeroes (after
    that step is recorded): "all" every environment's (the reference's: `reset_env` ->
    `VecNormalize.reset`), "own" only the finished environment's (the textbook estimator).
    They agree where every trial ends at the same step (Grid-World, the Cheetahs, ML10);
    on Ant, Walker and MC-LS "all" sees shorter returns, so it divides rewards by a smaller
    std (docs/design.md, deliberate differences: measured)."""
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
    kl_scale: KLScale = "reference"
    """With `elbo_subsample`: how the drawn KL terms are summed. "reference": each trial's
    S drawn KL terms weigh `batch_trials` times, the reference's effective scale (its
    `kl_divergences[elbo_indices]` sums S x B time rows over all B trials; the kl_weight of
    MuJoCo, ML10 and MC-LS was tuned with it), without its mismatched pairing of trials and
    steps; "trial": each trial's own S terms once. No effect without sub-sampling."""
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


def resolve_physics(physics: str) -> str:
    """The MuJoCo physics `physics` ("auto", "mjx" or "c") means on this machine: "auto" is
    "c" where JAX runs on the CPU (C MuJoCo is ~10x faster there than MJX), "mjx" on a GPU
    or TPU (thousands of environments at once without host round trips)."""
    if physics != "auto":
        return physics
    import jax  # here, not at the top: this module is the schema and imports no JAX

    return "c" if jax.default_backend() == "cpu" else "mjx"


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
    physics: Literal["auto", "mjx", "c"] = "auto"
    """Physics of the MuJoCo tasks (cheetah, ant, walker; the others ignore it): "mjx" (MJX,
    compiled into the training program: fast on GPUs), "c" (MuJoCo's C library through a
    callback: ~10x faster than MJX on a CPU, nothing to compile) or "auto" (c on a CPU, mjx
    elsewhere). Same model and solver settings: results differ at float precision only."""
    log: tuple[Literal["tensorboard", "wandb"], ...] = ()
    """Logging sinks besides metrics.csv (always written): "tensorboard", "wandb" (W&B; set
    WANDB_MODE=offline to log without an account), both or neither; the same scalars, one
    log run per (seed, lr) with the config attached. Optional extras: pip install
    'hypermeta[tensorboard]' / 'hypermeta[wandb]'."""
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

    def differences(self, other: TrainConfig) -> list[str]:
        """Settings that differ from `other`, as dotted paths of `settings` ("frames",
        "ppo.clip", "model.gru.size"), ignoring parallel_runs, vector_env (they change speed,
        not results) and log (where the same scalars are also sent: a resumed run or a sweep
        may add or drop a sink). Only the sequence model each config uses counts (an LSTM's
        size is no difference between two GRU runs). physics "auto" counts as what it means on
        this machine, so a run recorded with "c" and resumed with "auto" on a GPU (mjx) is
        refused, not switched."""
        mine, theirs = self.settings(), other.settings()
        if "auto" in (self.physics, other.physics):  # "auto" is what it means on this machine
            mine["physics"], theirs["physics"] = resolve_physics(self.physics), resolve_physics(other.physics)
        ignored = ("parallel_runs", "vector_env", "log")
        keys = [*mine, *(k for k in theirs if k not in mine)]
        return [k for k in keys if k not in ignored and mine.get(k) != theirs.get(k)]

    def settings(self) -> dict[str, object]:
        """Every setting by its dotted path ("ppo.clip", "model.transformer.dim"), the
        sequence-model configs but the one `model.sequence` names left out."""
        unused = {f"model.{name}" for name in SEQUENCE_CONFIGS if name != self.model.sequence}
        return {k: v for k, v in _flatten(self.to_dict()).items() if k.rpartition(".")[0] not in unused}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: dict) -> TrainConfig:
        data = dict(data)
        model = model_from_dict(data.pop("model"))
        ppo = PPOConfig(**data.pop("ppo"))
        inference_data = data.pop("inference", {})
        inference = InferenceConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in inference_data.items()})
        listed = {"seeds": tuple(data["seeds"]), "lr": tuple(data["lr"]), "log": tuple(data.get("log", ()))}
        return TrainConfig(**{**data, **listed}, model=model, ppo=ppo, inference=inference)


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    """{"ppo": {"clip": 0.1}} -> {"ppo.clip": 0.1}."""
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def model_from_dict(data: dict) -> ModelConfig:
    """The `ModelConfig` of a config.json's "model" (lists back to tuples); the flat sequence-model
    keys of older run directories (`gru_size`, `transformer_dim`, `lru_state`, ...) go to their
    model's config (`OLD_SEQUENCE_KEYS`), where a nested value of the same field wins."""
    data = dict(data)
    nested: dict[str, dict] = {name: {} for name in SEQUENCE_CONFIGS}
    for old, places in OLD_SEQUENCE_KEYS.items():
        if old in data:
            value = data.pop(old)
            for model, key in places:
                nested[model][key] = value
    for name, cls in SEQUENCE_CONFIGS.items():
        given = data.get(name, {})
        if not isinstance(given, dict):  # a damaged file: not silently the default sizes
            raise TypeError(f"model.{name} must be a dict of its settings, got {given!r}")
        data[name] = cls(**{**nested[name], **given})
    for name in ("policy_hidden", "sequence_options"):
        if name in data:
            data[name] = tuple(data[name])
    return ModelConfig(**data)


@dataclass(frozen=True)
class EvalSettings:
    """What `hypermeta eval` evaluates (`hypermeta.evaluation`)."""

    checkpoint: str = "latest"
    """Which checkpoint: latest, or the update number of one saved (the last two are kept)."""
    trials: int = 100
    """Fresh trials (tasks) per run; the same tasks for every run."""
    episodes: int | None = None
    """Episodes per trial (default: as trained); more shows whether later episodes keep improving."""
    seed: int = 0
    """Seed of the evaluation's tasks and environments."""
    train_seeds: tuple[int, ...] | None = None
    """Only the runs of these training seeds (default: every run of the directory)."""
    lr: tuple[float, ...] | None = None
    """Only the runs of these learning rates (default: every run of the directory)."""
    render: int = 0
    """Also picture this many trials per run: grid-world paths (and VariBAD belief maps) as PNG,
    MC-LS views as GIF, MuJoCo and Meta-World as MP4 (headless EGL or OSMesa)."""
