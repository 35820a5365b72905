"""The agent: trajectory encoder (GRU) -> latent -> actor and critic, composed per method.

Data flow at step t of a trial (original-implementation.md 1.1):

    x_t    = [ReLU(E_a a_{t-1}), ReLU(E_r r_{t-1}), ReLU(E_s s_t)]   (a_{-1}, r_{-1} = 0)
    h_t    = GRU(x_t, h_{t-1}),  h_{-1} = 0 at every trial start
    z_t    = Linear(h_t)                       2 * latent_dim features
    e_t    = tanh(Linear(z_t))                 25-d latent embedding
    policy = RNN:    base(e_t)
             RNN+S:  base([tanh(Linear(norm(s_t))), e_t])
             RNN+HN: base_{theta = HN(e_t)}(tanh(Linear(norm(s_t))))

VariBAD-type methods read z_t as [mu_t, log sigma^2_t] of a Gaussian belief, normalise it
and stop its gradient before the embedding (`training.conditioning`). Methods that use the
task c_M embed it as g(c) = tanh(Linear(norm(c_M))), the same size as e_t, so the two are
interchangeable as the policy's conditioning. Decoders (`networks.decoders`) exist only
for methods whose encoder is trained by the ELBO.

The reference's latent for the first step of a trial is a "prior" from an all-zero
input that has not seen s_0; ours has seen s_0 (the RL^2 convention), which gives
the policy the same information one step earlier and needs no special case.

The actor and the critic are separate base networks (256 -> 128 -> head, tanh) that
share the embeddings. Initialisations follow the reference: embeddings and the
critic head use PyTorch's nn.Linear default, base layers normc(5/3) with zero bias,
the categorical head orthogonal(0.01), the Gaussian mean head normc(1).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from hypermeta.config import InferenceConfig, ModelConfig
from hypermeta.envs.base import Array, Box, Discrete, Space
from hypermeta.methods.base import Method
from hypermeta.networks.decoders import CellRewardDecoder, RewardDecoder, StateDecoder, TaskDecoder
from hypermeta.networks.distributions import Categorical, DiagGaussian
from hypermeta.networks.hyper import HyperDense
from hypermeta.networks.init import TANH_GAIN, normc, torch_default_bias, torch_default_kernel, torch_linear
from hypermeta.networks.observation import observation_embed


def action_features(space: Space, action: Array) -> Array:
    """The encoder's view of an action: one-hot for discrete, the raw vector for continuous."""
    if isinstance(space, Discrete):
        return jnp.eye(space.n, dtype=jnp.float32)[action]
    return action.astype(jnp.float32)


def action_feature_dim(space: Space) -> int:
    return space.n if isinstance(space, Discrete) else space.shape[0]


class Agent(nn.Module):
    """Encoder + actor-critic. `encode` runs one GRU step; `policy` is batched over any leading axes."""

    model: ModelConfig
    method: Method
    action_space: Space
    obs_dim: int
    task_dim: int = 1
    num_cells: int = 0
    """Cells for a per-cell reward decoder (grid-worlds); 0: rewards are regressed."""
    image_shape: tuple[int, int, int] | None = None
    """(h, w, c) when the observation's first h*w*c values are an image (for `model.obs_encoder`)."""
    inference: InferenceConfig = InferenceConfig()

    def setup(self) -> None:
        m = self.model
        if m.encoder_action_embed > 0:
            self.enc_action = torch_linear(m.encoder_action_embed, action_feature_dim(self.action_space), "enc_action")
        self.enc_reward = torch_linear(m.encoder_reward_embed, 1, "enc_reward")
        self.enc_state = observation_embed(m.encoder_state_embed, self.obs_dim, m.obs_encoder, self.image_shape, "enc_state")
        orth = nn.initializers.orthogonal()
        self.gru = nn.GRUCell(m.gru_size, kernel_init=orth, recurrent_kernel_init=orth, name="gru")
        self.enc_head = torch_linear(2 * m.latent_dim, m.gru_size, "enc_head")

        self.latent_embed = torch_linear(m.policy_latent_embed, 2 * m.latent_dim, "latent_embed")
        if self.method.conditioning != "latent":
            self.state_embed = observation_embed(
                m.policy_state_embed, self.obs_dim, m.obs_encoder, self.image_shape, "state_embed"
            )
        if isinstance(self.action_space, Discrete):
            actor_head_init, n_out = nn.initializers.orthogonal(0.01), self.action_space.n
        else:
            actor_head_init, n_out = normc(1.0), self.action_space.shape[0]
            self.log_std = self.param("log_std", nn.initializers.zeros, (n_out,))
        hidden_init = normc(TANH_GAIN)
        widths = list(m.policy_hidden)
        self.actor = self._base("actor", widths + [n_out], [hidden_init] * len(widths) + [actor_head_init])
        self.critic = self._base("critic", widths + [1], [hidden_init] * len(widths) + [torch_default_kernel()])
        if self.method.uses_task_embedding:
            self.task_embed = torch_linear(m.policy_latent_embed, self.task_dim, "task_embed")
        if self.method.variational:
            self._setup_decoders()

    def _setup_decoders(self) -> None:
        # Decoders read and reconstruct observations with the trial's done bit, as the
        # reference's VAE states (Walker's state decoder predicts 18 values).
        inf = self.inference
        if inf.decode_reward:
            if self.num_cells:
                self.dec_reward = CellRewardDecoder(inf.reward_decoder, self.num_cells, name="dec_reward")
            else:
                self.dec_reward = RewardDecoder(inf.reward_decoder, name="dec_reward")
        if inf.decode_state:
            self.dec_state = StateDecoder(inf.state_decoder, self.obs_dim, name="dec_state")
        if self.method.task_target != "none":
            self.dec_task = TaskDecoder(inf.task_decoder, self.task_target_dim, name="dec_task")

    @property
    def task_target_dim(self) -> int:
        """Size of what task inference reconstructs."""
        target = self.method.task_target
        if target == "task":
            return self.task_dim
        if target == "embedding":
            return self.model.policy_latent_embed
        if target == "base-net":
            return self.base_net_size
        return 0

    @property
    def base_net_size(self) -> int:
        """Number of weights and biases of the actor and critic base networks."""
        n_out = self.action_space.n if isinstance(self.action_space, Discrete) else self.action_space.shape[0]
        total = 0
        for widths in (list(self.model.policy_hidden) + [1], list(self.model.policy_hidden) + [n_out]):
            fan_in = self.model.policy_state_embed
            for w in widths:
                total += fan_in * w + w
                fan_in = w
        return total

    def _base(self, name: str, widths: list[int], kernel_inits: list[Any]) -> list[nn.Module]:
        if self.method.conditioning == "hyper":
            return [
                HyperDense(w, self.method.hyper_init, k, name=f"{name}_{i}")
                for i, (w, k) in enumerate(zip(widths, kernel_inits))
            ]
        bias_inits = [nn.initializers.zeros] * len(widths)
        if name == "critic" and len(widths) > 1:  # PyTorch-default head: its bias is U(+-1/sqrt(fan_in)) too
            bias_inits[-1] = torch_default_bias(widths[-2])
        return [
            nn.Dense(w, kernel_init=k, bias_init=b, name=f"{name}_{i}")
            for i, (w, k, b) in enumerate(zip(widths, kernel_inits, bias_inits))
        ]

    def initial_hidden(self, batch_shape: tuple[int, ...] = ()) -> Array:
        return jnp.zeros((*batch_shape, self.model.gru_size), jnp.float32)

    def encode(self, h: Array, prev_action: Array, prev_reward: Array, obs: Array, reset: Array) -> tuple[Array, Array]:
        """One encoder step; `reset` (bool, trial start) zeroes the hidden state first."""
        h = jnp.where(reset[..., None], 0.0, h)
        parts = []
        if self.model.encoder_action_embed > 0:
            parts.append(nn.relu(self.enc_action(prev_action)))
        parts.append(nn.relu(self.enc_reward(prev_reward[..., None])))
        parts.append(nn.relu(self.enc_state(obs)))
        h, _ = self.gru(h, jnp.concatenate(parts, axis=-1))
        return h, self.enc_head(h)

    def embed_latent(self, latent: Array) -> Array:
        """e_t = tanh(Linear(z_t)): the conditioning embedding from the encoder's latent."""
        return jnp.tanh(self.latent_embed(latent))

    def embed_task(self, task: Array) -> Array:
        """g(c) = tanh(Linear(c)) from the normalised task vector."""
        return jnp.tanh(self.task_embed(task))

    def policy(self, obs: Array, latent: Array) -> tuple[Categorical | DiagGaussian, Array]:
        """Action distribution and value from the normalised observation and the latent."""
        return self.policy_from_embedding(obs, self.embed_latent(latent))

    def policy_from_embedding(self, obs: Array, e: Array) -> tuple[Categorical | DiagGaussian, Array]:
        """Action distribution and value from the normalised observation and a conditioning embedding."""
        conditioning = self.method.conditioning
        if conditioning == "latent":
            x = e
        elif conditioning == "state+latent":
            x = jnp.concatenate([jnp.tanh(self.state_embed(obs)), e], axis=-1)
        else:
            x = jnp.tanh(self.state_embed(obs))
        out = self._apply_base(self.actor, x, e)
        value = self._apply_base(self.critic, x, e)[..., 0]
        if isinstance(self.action_space, Box):
            return DiagGaussian(out, self.log_std), value
        return Categorical(out), value

    def _apply_base(self, layers: list[nn.Module], x: Array, e: Array) -> Array:
        hyper = self.method.conditioning == "hyper"
        for i, layer in enumerate(layers):
            x = layer(x, e) if hyper else layer(x)
            if i < len(layers) - 1:
                x = jnp.tanh(x)
        return x

    def _hyper_layer_names(self) -> list[str]:
        """Parameter names of the hypernetwork layers: critic then actor, input to output."""
        return [f"critic_{i}" for i in range(len(self.critic))] + [f"actor_{i}" for i in range(len(self.actor))]

    def base_net(self, e: Array) -> Array:
        """The base-network parameters the hypernetwork generates for embedding e, flattened:
        critic then actor, each layer's weight then bias (the BI target)."""
        parts = []
        for name in self._hyper_layer_names():
            weight, bias = HyperDense.generated_params(self.variables["params"][name], e)
            parts += [weight.reshape(*e.shape[:-1], -1), bias]
        return jnp.concatenate(parts, axis=-1)

    def base_net_gram(self) -> Array:
        """G with ||base_net(e1) - base_net(e2)||^2 = d^T G d, d = e1 - e2 (the map is affine)."""
        gram = 0.0
        for name in self._hyper_layer_names():
            p = self.variables["params"][name]
            n_in, n_out = p["w_const"].shape
            heads = p["w_head"].reshape(n_in, -1, n_out)
            gram = gram + jnp.einsum("ijo,iko->jk", heads, heads) + p["b_head"] @ p["b_head"].T
        return gram

    def __call__(self, h: Array, prev_action: Array, prev_reward: Array, obs: Array, reset: Array, task: Array):
        """Encoder step, policy and every decoder (used to initialise all parameters)."""
        h, latent = self.encode(h, prev_action, prev_reward, obs, reset)
        out = self.policy(obs, latent)
        if self.method.uses_task_embedding:
            self.embed_task(task)
        if self.method.variational:
            z = latent[..., : self.model.latent_dim]
            if self.inference.decode_reward and self.num_cells:
                self.dec_reward(z)
            elif self.inference.decode_reward:
                self.dec_reward(z, obs, prev_action, obs)
            if self.inference.decode_state:
                self.dec_state(z, obs, prev_action)
            if self.method.task_target != "none":
                self.dec_task(z)
        return h, out
