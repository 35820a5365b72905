"""The policy networks: how the actor and the critic combine the state with the conditioning.

Each conditioning of the paper's Table 1 is one module, chosen once by the method
(`Method.conditioning` -> CONDITIONINGS):

    latent         RNN:    base(e_t)
    state+latent   RNN+S:  base([tanh(Linear(norm(s_t))), e_t])
    hyper          RNN+HN: base_{theta = HN(e_t)}(tanh(Linear(norm(s_t))))

e_t = tanh(Linear(z_t)) is the latent embedding (`embed_latent`, part of this module); a
method that conditions on the task instead passes g(c_M) from `TaskEmbedding`, the same
size. The actor and the critic are separate base networks (256 -> 128 -> head, tanh) that
share the embeddings. Initialisations follow the reference: embeddings and the critic
head use PyTorch's nn.Linear default, base layers normc(5/3) with zero bias, the
categorical head orthogonal(0.01), the Gaussian mean head normc(1). A new conditioning is
one subclass of `PolicyNetwork` and one line in CONDITIONINGS.

Every parameter here is in the agent's "policy" group (`networks.agent.PARAM_GROUPS`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from hypermeta.config import ModelConfig
from hypermeta.envs.base import Array, Box, Discrete, Space
from hypermeta.networks.distributions import Categorical, DiagGaussian
from hypermeta.networks.hyper import HyperDense, HyperInit
from hypermeta.networks.init import TANH_GAIN, normc, torch_default_bias, torch_default_kernel, torch_linear
from hypermeta.networks.observation import observation_embed


def num_outputs(space: Space) -> int:
    """The actor head's width: logits of a discrete space, the mean of a continuous one."""
    return space.n if isinstance(space, Discrete) else space.shape[0]


class PolicyNetwork(nn.Module):
    """Actor and critic over (normalised observation, conditioning embedding); subclasses say
    what the base networks read (`features`) and how a layer uses the embedding (`layer`)."""

    model: ModelConfig
    action_space: Space
    obs_dim: int
    latent_features: int
    image_shape: tuple[int, int, int] | None = None
    hyper_init: HyperInit = "bias"

    reads_state = True

    def setup(self) -> None:
        m = self.model
        self.latent_embed = torch_linear(m.policy_latent_embed, self.latent_features, "latent_embed")
        if self.reads_state:
            self.state_embed = observation_embed(m.policy_state_embed, self.obs_dim, m.obs_encoder, self.image_shape,
                                                 "state_embed")
        n_out = num_outputs(self.action_space)
        if isinstance(self.action_space, Discrete):
            actor_head_init = nn.initializers.orthogonal(0.01)
        else:
            actor_head_init = normc(1.0)
            self.log_std = self.param("log_std", nn.initializers.zeros, (n_out,))
        hidden_init = normc(TANH_GAIN)
        widths = list(m.policy_hidden)
        self.actor = self.base("actor", widths + [n_out], [hidden_init] * len(widths) + [actor_head_init])
        self.critic = self.base("critic", widths + [1], [hidden_init] * len(widths) + [torch_default_kernel()])

    def base(self, name: str, widths: list[int], kernel_inits: list[Any]) -> list[nn.Module]:
        """The layers of one base network (plain dense layers)."""
        bias_inits = [nn.initializers.zeros] * len(widths)
        if name == "critic" and len(widths) > 1:  # PyTorch-default head: its bias is U(+-1/sqrt(fan_in)) too
            bias_inits[-1] = torch_default_bias(widths[-2])
        return [nn.Dense(w, kernel_init=k, bias_init=b, name=f"{name}_{i}")
                for i, (w, k, b) in enumerate(zip(widths, kernel_inits, bias_inits, strict=True))]

    def features(self, obs: Array, e: Array) -> Array:
        raise NotImplementedError

    def layer(self, layer: nn.Module, x: Array, e: Array) -> Array:
        return layer(x)

    def embed_latent(self, latent: Array) -> Array:
        """e_t = tanh(Linear(z_t)): the conditioning embedding from the encoder's latent."""
        return jnp.tanh(self.latent_embed(latent))

    def _apply_base(self, layers: list[nn.Module], x: Array, e: Array) -> Array:
        for i, layer in enumerate(layers):
            x = self.layer(layer, x, e)
            if i < len(layers) - 1:
                x = jnp.tanh(x)
        return x

    def __call__(self, obs: Array, e: Array) -> tuple[Categorical | DiagGaussian, Array]:
        """Action distribution and value from the normalised observation and a conditioning embedding."""
        x = self.features(obs, e)
        out = self._apply_base(self.actor, x, e)
        value = self._apply_base(self.critic, x, e)[..., 0]
        if isinstance(self.action_space, Box):
            return DiagGaussian(out, self.log_std), value
        return Categorical(out), value


class LatentPolicy(PolicyNetwork):
    """RNN (RL^2): the base networks read only the conditioning embedding."""

    reads_state = False

    def features(self, obs: Array, e: Array) -> Array:
        return e


class StateLatentPolicy(PolicyNetwork):
    """RNN+S: the state embedding and the conditioning embedding, concatenated."""

    def features(self, obs: Array, e: Array) -> Array:
        return jnp.concatenate([jnp.tanh(self.state_embed(obs)), e], axis=-1)


class HyperPolicy(PolicyNetwork):
    """RNN+HN: a hypernetwork maps the embedding to every weight and bias of the base
    networks, which read only the state embedding."""

    def base(self, name: str, widths: list[int], kernel_inits: list[Any]) -> list[nn.Module]:
        return [HyperDense(w, self.hyper_init, k, name=f"{name}_{i}")
                for i, (w, k) in enumerate(zip(widths, kernel_inits, strict=True))]

    def features(self, obs: Array, e: Array) -> Array:
        return jnp.tanh(self.state_embed(obs))

    def layer(self, layer: nn.Module, x: Array, e: Array) -> Array:
        return layer(x, e)

    def _hyper_layers(self) -> list[str]:
        """Parameter names of the hypernetwork layers: critic then actor, input to output."""
        return [f"critic_{i}" for i in range(len(self.critic))] + [f"actor_{i}" for i in range(len(self.actor))]

    def base_net(self, e: Array) -> Array:
        """The base-network parameters the hypernetwork generates for embedding e, flattened:
        critic then actor, each layer's weight then bias (the BI target)."""
        parts = []
        for name in self._hyper_layers():
            weight, bias = HyperDense.generated_params(self.variables["params"][name], e)
            parts += [weight.reshape(*e.shape[:-1], -1), bias]
        return jnp.concatenate(parts, axis=-1)

    def base_net_gram(self) -> Array:
        """G with ||base_net(e1) - base_net(e2)||^2 = d^T G d, d = e1 - e2 (the map is affine)."""
        gram = 0.0
        for name in self._hyper_layers():
            p = self.variables["params"][name]
            n_in, n_out = p["w_const"].shape
            heads = p["w_head"].reshape(n_in, -1, n_out)
            gram = gram + jnp.einsum("ijo,iko->jk", heads, heads) + p["b_head"] @ p["b_head"].T
        return gram


CONDITIONINGS: dict[str, type[PolicyNetwork]] = {
    "latent": LatentPolicy,
    "state+latent": StateLatentPolicy,
    "hyper": HyperPolicy,
}
"""`Method.conditioning` -> its policy network."""


def base_net_size(model: ModelConfig, action_space: Space) -> int:
    """Number of weights and biases of the actor and critic base networks (over the state embedding)."""
    total = 0
    for widths in (list(model.policy_hidden) + [1], list(model.policy_hidden) + [num_outputs(action_space)]):
        fan_in = model.policy_state_embed
        for w in widths:
            total += fan_in * w + w
            fan_in = w
    return total
