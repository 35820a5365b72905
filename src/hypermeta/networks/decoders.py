"""VariBAD decoders (original-implementation.md 2.3): ReLU MLPs reading a latent sample.

* `CellRewardDecoder`: z -> one logit per cell, "the goal is here" (the Grid decoder).
* `RewardDecoder`: [z, emb(s_{t+1}), emb(a_t), emb(s_t)] -> r_t (MuJoCo-style regression).
* `StateDecoder`: [z, emb(s_t), emb(a_t)] -> s_{t+1} (Walker, ML10).
* `TaskDecoder`: z -> a task target; its `squared_error` never materialises the
  prediction, so a 198k-dimensional base-network target (BI) costs a few small
  matmuls instead of B x T x 198k floats:
  ||W h + b - y||^2 = h^T (W W^T) h + 2 h . W (b - y) + ||b - y||^2.

Every layer is initialised as PyTorch's nn.Linear (the reference's decoders and their
`FeatureExtractor` embeddings keep torch's default), and the embeddings of states and
actions have the encoder's sizes (the reference's `state_embedding_size` and
`action_embedding_size` serve both; an action embedding of 0 leaves actions out).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from hypermeta.envs.base import Array
from hypermeta.networks.init import torch_default_bias, torch_default_kernel, torch_linear


def _embed(features: int, x: Array, name: str) -> list[Array]:
    """The reference's `FeatureExtractor`: ReLU(Linear(x)), nothing where `features` is 0."""
    return [nn.relu(torch_linear(features, x.shape[-1], name)(x))] if features else []


class MLP(nn.Module):
    """ReLU hidden layers, linear output."""

    hidden: tuple[int, ...]
    out: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for i, width in enumerate(self.hidden):
            x = nn.relu(torch_linear(width, x.shape[-1], f"hidden_{i}")(x))
        return torch_linear(self.out, x.shape[-1], "out")(x)


class CellRewardDecoder(nn.Module):
    hidden: tuple[int, ...]
    num_cells: int

    @nn.compact
    def __call__(self, z: Array) -> Array:
        return MLP(self.hidden, self.num_cells, name="mlp")(z)


class RewardDecoder(nn.Module):
    hidden: tuple[int, ...]
    state_embed: int
    action_embed: int

    @nn.compact
    def __call__(self, z: Array, obs: Array, action: Array, next_obs: Array) -> Array:
        embed_s = torch_linear(self.state_embed, obs.shape[-1], "embed_state")  # shared by s and s'
        parts = [z, nn.relu(embed_s(next_obs)), *_embed(self.action_embed, action, "embed_action"),
                 nn.relu(embed_s(obs))]
        return MLP(self.hidden, 1, name="mlp")(jnp.concatenate(parts, axis=-1))[..., 0]


class StateDecoder(nn.Module):
    hidden: tuple[int, ...]
    obs_dim: int
    state_embed: int
    action_embed: int

    @nn.compact
    def __call__(self, z: Array, obs: Array, action: Array) -> Array:
        parts = [z, *_embed(self.state_embed, obs, "embed_state"), *_embed(self.action_embed, action, "embed_action")]
        return MLP(self.hidden, self.obs_dim, name="mlp")(jnp.concatenate(parts, axis=-1))


class TaskDecoder(nn.Module):
    hidden: tuple[int, ...]
    out: int
    latent_dim: int

    def setup(self) -> None:
        if not self.hidden:
            raise ValueError("the task decoder needs at least one hidden layer")
        # Layers with explicit sizes (setup knows no input): fan-ins for torch's init.
        fan_ins = (self.latent_dim, *self.hidden[:-1])
        self.layers = [torch_linear(w, f, f"hidden_{i}") for i, (w, f) in enumerate(zip(self.hidden, fan_ins, strict=True))]
        width = self.hidden[-1]
        self.kernel = self.param("out_kernel", torch_default_kernel(), (width, self.out))
        self.bias = self.param("out_bias", torch_default_bias(width), (self.out,))

    def features(self, z: Array) -> Array:
        for layer in self.layers:
            z = nn.relu(layer(z))
        return z

    def __call__(self, z: Array) -> Array:
        return self.features(z) @ self.kernel + self.bias

    def squared_error(self, z: Array, target: Array) -> Array:
        """||decoder(z) - target||^2 over the last axis; `target` broadcasts against z's leading axes."""
        h = self.features(z)
        gram = self.kernel @ self.kernel.T
        offset = self.bias - target
        return (jnp.einsum("...i,ij,...j->...", h, gram, h) + 2 * jnp.sum(h * (offset @ self.kernel.T), axis=-1)
                + jnp.sum(offset**2, axis=-1))


class Decoders(nn.Module):
    """The VariBAD decoders of one method (the agent's "decoder" parameter group).

    `decode_reward`: a per-cell decoder where the environment has cells (`num_cells` > 0),
    else reward regression; `decode_state`: the next state; `task_dim` > 0: a task decoder.
    States include the trial's done bit, as the reference's VAE states. `state_embed` and
    `action_embed`: the encoder's embedding sizes (the reference's decoders share them)."""

    reward: tuple[int, ...] | None
    state: tuple[int, ...] | None
    task: tuple[int, ...] | None
    obs_dim: int
    task_dim: int
    latent_dim: int
    state_embed: int
    action_embed: int
    num_cells: int = 0

    def setup(self) -> None:
        if self.reward is not None:
            self.dec_reward = (CellRewardDecoder(self.reward, self.num_cells, name="dec_reward") if self.num_cells
                               else RewardDecoder(self.reward, self.state_embed, self.action_embed, name="dec_reward"))
        if self.state is not None:
            self.dec_state = StateDecoder(self.state, self.obs_dim, self.state_embed, self.action_embed,
                                          name="dec_state")
        if self.task is not None:
            self.dec_task = TaskDecoder(self.task, self.task_dim, self.latent_dim, name="dec_task")

    def reward_logits(self, z: Array) -> Array:
        """Per-cell logits "the goal is here" (grid-worlds)."""
        return self.dec_reward(z)

    def reward_prediction(self, z: Array, obs: Array, action: Array, next_obs: Array) -> Array:
        return self.dec_reward(z, obs, action, next_obs)

    def state_prediction(self, z: Array, obs: Array, action: Array) -> Array:
        return self.dec_state(z, obs, action)

    def task_error(self, z: Array, target: Array) -> Array:
        return self.dec_task.squared_error(z, target)

    def __call__(self, z: Array, obs: Array, action: Array) -> None:
        """Every decoder once (initialises all parameters)."""
        if self.reward is not None:
            self.reward_logits(z) if self.num_cells else self.reward_prediction(z, obs, action, obs)
        if self.state is not None:
            self.state_prediction(z, obs, action)
        if self.task is not None:
            self.dec_task(z)
