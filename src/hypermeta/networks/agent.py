"""The agent: trajectory encoder -> latent -> policy, composed per method, as pure functions.

Data flow at step t of a trial (original-implementation.md 1.1):

    h_t, z_t = encoder(h_{t-1}, a_{t-1}, r_{t-1}, s_t)     `networks.encoder`
    e_t      = tanh(Linear(z_t))                           25-d latent embedding
    policy   = base(e_t) / base([state, e_t]) / base_{HN(e_t)}(state)   `networks.policies`

VariBAD-type methods read z_t as [mu_t, log sigma^2_t] of a Gaussian belief, normalise it
and stop its gradient before the embedding (`training.conditioning`). Methods that use the
task c_M embed it as g(c) = tanh(Linear(norm(c_M))), the same size as e_t, so the two are
interchangeable as the policy's conditioning. Decoders (`networks.decoders`) exist only
for methods whose encoder is trained by the ELBO.

The parameters are a dict of groups, one flax module each: "encoder", "policy",
"task_embed" (methods that read g(c_M)) and "decoder" (VariBAD-type methods). What trains,
clips, freezes or re-initialises each group is defined once, in PARAM_GROUPS; a layer
added to a module joins its module's group.

The reference's latent for the first step of a trial is a "prior" from an all-zero
input that has not seen s_0; ours has seen s_0 (the RL^2 convention), which gives
the policy the same information one step earlier and needs no special case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from hypermeta.config import InferenceConfig, ModelConfig
from hypermeta.envs.base import Array, Discrete, Space
from hypermeta.networks.decoders import Decoders
from hypermeta.networks.distributions import Categorical, DiagGaussian
from hypermeta.networks.encoder import EncoderInputs, TrajectoryEncoder
from hypermeta.networks.hyper import HyperInit
from hypermeta.networks.init import torch_linear
from hypermeta.networks.policies import CONDITIONINGS, HyperPolicy, PolicyNetwork, base_net_size


def action_features(space: Space, action: Array) -> Array:
    """The encoder's view of an action: one-hot for discrete, the raw vector for continuous."""
    if isinstance(space, Discrete):
        return jnp.eye(space.n, dtype=jnp.float32)[action]
    return action.astype(jnp.float32)


def action_feature_dim(space: Space) -> int:
    return space.n if isinstance(space, Discrete) else space.shape[0]


@dataclass(frozen=True)
class ParamGroup:
    """What each optimiser does with one group of the agent's parameters."""

    ppo: Literal["encoder", "policy", "none"]
    """PPO's Adam for it (the encoder's has its own eps and gradient clip) or none."""
    elbo: bool
    """The ELBO's optimiser trains it (VariBAD-type methods)."""
    fresh_after_pretraining: bool
    """Re-initialised when multi-task pre-training without "++" ends."""


PARAM_GROUPS: dict[str, ParamGroup] = {
    "encoder": ParamGroup(ppo="encoder", elbo=True, fresh_after_pretraining=False),
    "policy": ParamGroup(ppo="policy", elbo=False, fresh_after_pretraining=True),
    "task_embed": ParamGroup(ppo="policy", elbo=False, fresh_after_pretraining=False),
    "decoder": ParamGroup(ppo="none", elbo=True, fresh_after_pretraining=False),
}
"""The one definition of the parameter groups (top-level keys of the agent's parameters)."""


def group_labels(params: dict, label: Callable[[ParamGroup], str]) -> dict:
    """A label for every leaf of `params`: `label` of its group (for `optax.multi_transform`)."""
    return {name: jax.tree.map(lambda _, g=PARAM_GROUPS[name]: label(g), sub) for name, sub in params.items()}


class TaskEmbedding(nn.Module):
    """g(c) = tanh(Linear(c)) of the normalised task vector."""

    features: int
    task_dim: int

    @nn.compact
    def __call__(self, task: Array) -> Array:
        return jnp.tanh(torch_linear(self.features, self.task_dim, "task_embed")(task))


class MethodSpec(Protocol):
    """What the networks read of a method: a `hypermeta.methods.Method`. The methods sit above
    the networks (their parts call into training), so only the shape is named here."""

    conditioning: str
    hyper_init: HyperInit
    encoder: Any  # methods.encoder_objectives.EncoderObjective
    policy_input: Any  # methods.policy_inputs.PolicyInput
    task_target: Any  # methods.task_targets.TaskTarget
    pretrain: Any  # methods.pretraining.Pretraining

    @property
    def variational(self) -> bool: ...

    @property
    def uses_task_embedding(self) -> bool: ...


@dataclass(frozen=True, eq=False)
class Agent:
    """The networks of one method and pure functions over their parameters (a dict of groups)."""

    model: ModelConfig
    method: MethodSpec
    action_space: Space
    obs_dim: int
    task_dim: int = 1
    num_cells: int = 0
    """Cells for a per-cell reward decoder (grid-worlds); 0: rewards are regressed."""
    image_shape: tuple[int, int, int] | None = None
    """(h, w, c) when the observation's first h*w*c values are an image (for `model.obs_encoder`)."""
    trial_steps: int = 1
    """Most steps of one trial (bounds the transformer encoder's window)."""
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    encoder: TrajectoryEncoder = field(init=False)
    policy_net: PolicyNetwork = field(init=False)
    task_net: TaskEmbedding | None = field(init=False)
    decoders: Decoders | None = field(init=False)

    def __post_init__(self) -> None:
        m, method, inf = self.model, self.method, self.inference
        modules = {
            "encoder": TrajectoryEncoder(m, action_feature_dim(self.action_space), self.obs_dim, self.image_shape,
                                         self.trial_steps),
            "policy_net": CONDITIONINGS[method.conditioning](m, self.action_space, self.obs_dim, 2 * m.latent_dim,
                                                             self.image_shape, method.hyper_init),
            "task_net": TaskEmbedding(m.policy_latent_embed, self.task_dim) if method.uses_task_embedding else None,
            "decoders": Decoders(
                inf.reward_decoder if inf.decode_reward else None, inf.state_decoder if inf.decode_state else None,
                inf.task_decoder if method.task_target.decoded else None, self.obs_dim, self.task_target_dim,
                m.latent_dim, m.encoder_state_embed, m.encoder_action_embed, self.num_cells,
            ) if method.variational else None,
        }
        for name, module in modules.items():
            object.__setattr__(self, name, module)

    # --- parameters ------------------------------------------------------------------------

    def init(self, key: Array, inputs: EncoderInputs, task: Array) -> dict:
        """Fresh parameters of every group. Each group's module is initialised from `key`
        with its layers' names, so a layer's initial values depend on its name only."""
        carry = self.initial_carry(inputs.reset.shape)
        params = {"encoder": self.encoder.init(key, carry, inputs)["params"]}
        _, latent = self.encode(params, carry, inputs)
        params["policy"] = self.policy_net.init(key, inputs.obs, latent, method=_init_policy)["params"]
        if self.task_net is not None:
            params["task_embed"] = self.task_net.init(key, task)["params"]
        if self.decoders is not None:
            z = latent[..., : self.model.latent_dim]
            params["decoder"] = self.decoders.init(key, z, inputs.obs, inputs.prev_action)["params"]
        return params

    @property
    def task_target_dim(self) -> int:
        """Size of what task inference reconstructs."""
        return self.method.task_target.dim(self)

    @property
    def base_net_size(self) -> int:
        """Number of weights and biases of the actor and critic base networks."""
        return base_net_size(self.model, self.action_space)

    # --- encoder ---------------------------------------------------------------------------

    def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """The encoder's state at a trial start."""
        return self.encoder.initial_carry(batch_shape)

    def encode(self, params: dict, carry: Any, inputs: EncoderInputs) -> tuple[Any, Array]:
        """One encoder step: (next carry, latent z_t)."""
        return self.encoder.apply({"params": params["encoder"]}, carry, inputs)

    def encode_sequence(self, params: dict, carry: Any, inputs: EncoderInputs) -> tuple[Any, Array]:
        """The encoder over time-major inputs (T, ...) from `carry`, resetting at trial starts:
        (carry after the last step, latents (T, ..., 2 * latent_dim)). Acting, the PPO replay
        and the ELBO all read the encoder through this one function (or its single step)."""
        return self.encoder.apply({"params": params["encoder"]}, carry, inputs, method=TrajectoryEncoder.sequence)

    # --- policy ----------------------------------------------------------------------------

    def embed_latent(self, params: dict, latent: Array) -> Array:
        """e_t = tanh(Linear(z_t)): the conditioning embedding from the encoder's latent."""
        return self.policy_net.apply({"params": params["policy"]}, latent, method=PolicyNetwork.embed_latent)

    def embed_task(self, params: dict, task: Array) -> Array:
        """g(c) = tanh(Linear(c)) from the normalised task vector."""
        return self.task_net.apply({"params": params["task_embed"]}, task)

    def policy(self, params: dict, obs: Array, e: Array) -> tuple[Categorical | DiagGaussian, Array]:
        """Action distribution and value from the normalised observation and a conditioning embedding."""
        return self.policy_net.apply({"params": params["policy"]}, obs, e)

    def base_net(self, params: dict, e: Array) -> Array:
        """The base network the hypernetwork generates for embedding e, flattened (the BI target)."""
        return self.policy_net.apply({"params": params["policy"]}, e, method=HyperPolicy.base_net)

    def base_net_gram(self, params: dict) -> Array:
        """G with ||base_net(e1) - base_net(e2)||^2 = d^T G d, d = e1 - e2 (the map is affine)."""
        return self.policy_net.apply({"params": params["policy"]}, method=HyperPolicy.base_net_gram)

    # --- decoders --------------------------------------------------------------------------

    def decoder(self, params: dict, method: Callable, *args: Array) -> Array:
        """`Decoders.<method>(*args)` with this agent's decoder parameters."""
        return self.decoders.apply({"params": params["decoder"]}, *args, method=method)


def _init_policy(net: PolicyNetwork, obs: Array, latent: Array):
    """Every layer of a policy network once (initialises its parameters)."""
    return net(obs, net.embed_latent(latent))
