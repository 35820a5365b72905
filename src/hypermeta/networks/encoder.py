"""The trajectory encoder: (a_{t-1}, r_{t-1}, s_t) -> embeddings -> sequence model -> latent.

    x_t = [ReLU(E_a a_{t-1}), ReLU(E_r r_{t-1}), ReLU(E_s s_t)]   (a_{-1}, r_{-1} = 0)
    h_t = GRU(x_t, h_{t-1}),  h_{-1} = initial carry at every trial start
    z_t = Linear(h_t)                                              2 * latent_dim features

The GRU is the paper's; `ModelConfig.sequence` swaps in another sequence model
(`networks.sequence_registry.SEQUENCE_MODELS`: an LSTM, a transformer over the trial, linear
recurrent units, a plug-in's) with the same trial semantics (memory starts fresh exactly at
trial starts).

Every parameter here belongs to the agent's "encoder" group (`networks.agent.PARAM_GROUPS`):
a layer added to this module is trained, clipped and kept like the rest of the encoder.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from flax import struct

from hypermeta.config import ModelConfig
from hypermeta.envs.base import Array
from hypermeta.networks.init import torch_linear
from hypermeta.networks.observation import observation_embed
from hypermeta.networks.sequence_registry import module_name, sequence_model


@struct.dataclass
class EncoderInputs:
    """What the encoder reads at each step (any leading axes, time-major for sequences)."""

    prev_action: Array  # (..., action_features): zeros at a trial start
    prev_reward: Array  # (...,): zeros at a trial start
    obs: Array  # (..., obs_dim)
    reset: Array  # (...,) bool: `obs` starts a new trial (the carry is reset first)


class TrajectoryEncoder(nn.Module):
    """Input embeddings, the sequence model and the latent head."""

    model: ModelConfig
    action_dim: int
    obs_dim: int
    image_shape: tuple[int, int, int] | None = None
    trial_steps: int = 1
    """Most steps of one trial (the transformer's window when `model.transformer.window` is 0)."""

    def setup(self) -> None:
        m = self.model
        if m.encoder_action_embed > 0:
            self.enc_action = torch_linear(m.encoder_action_embed, self.action_dim, "enc_action")
        self.enc_reward = torch_linear(m.encoder_reward_embed, 1, "enc_reward")
        self.enc_state = observation_embed(m.encoder_state_embed, self.obs_dim, m.obs_encoder, self.image_shape, "enc_state")
        self.gru = sequence_model(m, self.trial_steps, name=module_name(m.sequence))
        self.enc_head = torch_linear(2 * m.latent_dim, self.gru.features, "enc_head")

    def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """The carry at a trial start (needs no parameters: callable on the unbound module)."""
        return sequence_model(self.model, self.trial_steps, parent=None).initial_carry(batch_shape)

    def embed(self, inputs: EncoderInputs) -> Array:
        parts = []
        if self.model.encoder_action_embed > 0:
            parts.append(nn.relu(self.enc_action(inputs.prev_action)))
        parts.append(nn.relu(self.enc_reward(inputs.prev_reward[..., None])))
        parts.append(nn.relu(self.enc_state(inputs.obs)))
        return jnp.concatenate(parts, axis=-1)

    def __call__(self, carry: Any, inputs: EncoderInputs) -> tuple[Any, Array]:
        """One step: (next carry, latent)."""
        carry, y = self.gru(carry, self.embed(inputs), inputs.reset)
        return carry, self.enc_head(y)

    def sequence(self, carry: Any, inputs: EncoderInputs) -> tuple[Any, Array]:
        """T steps of time-major inputs: (carry after the last step, latents (T, ...)).

        A recurrent model replays its step, embeddings included, so the replay computes
        exactly what acting computed (PPO's first-epoch ratios are exactly 1); a model with
        a parallel form (`SequenceModel.parallel`) embeds the whole sequence and runs its
        own `sequence`."""
        if self.gru.parallel:
            carry, ys = self.gru.sequence(carry, self.embed(inputs), inputs.reset)
            return carry, self.enc_head(ys)
        scan = nn.scan(lambda encoder, c, x: encoder(c, x), variable_broadcast="params", split_rngs={"params": False})
        return scan(self, carry, inputs)
