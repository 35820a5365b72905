"""Observation embeddings: the first layer that reads an observation, in the encoder and the policy.

Every observation is a flat vector. For an image environment (MC-LS) its first h*w*c
values are the image and the rest (the trial's done bit) are extra features:

* "mlp": one linear layer over the whole flattened vector, what the authors did for
  MC-LS's 10 x 10 views (and the only choice for vector observations);
* "cnn": a small convolutional network over the image (16 4x4 filters with stride 2,
  then 32 3x3 filters with stride 2, ReLU), flattened, concatenated with the extra
  features and projected linearly. Use it for larger views (e.g. 42 x 42), where a
  linear layer over every pixel gets large and ignores locality. Both layers stride 2
  because convolution gradients are slow on XLA:CPU: a first layer at full resolution
  (16 3x3 filters, stride 1) made the gradient over 3,200 42x42 views take 15.7 s on
  a 2-core CPU; this layout takes 1.5 s.

Callers apply their own nonlinearity (ReLU in the encoder, tanh in the policy).
"""

from __future__ import annotations

from typing import get_args

import flax.linen as nn
import jax.numpy as jnp

from hypermeta.config import ObsEncoder
from hypermeta.envs.base import Array
from hypermeta.networks.init import torch_default_bias, torch_default_kernel, torch_linear

OBS_ENCODERS: tuple[str, ...] = get_args(ObsEncoder)


class ImageEmbed(nn.Module):
    """Small CNN over the image part of a flat observation, then a linear projection."""

    features: int
    image_shape: tuple[int, int, int]

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        h, w, c = self.image_shape
        lead = obs.shape[:-1]
        flat = obs.reshape(-1, obs.shape[-1])
        x = flat[:, : h * w * c].reshape(-1, h, w, c)
        for i, (filters, size) in enumerate(((16, 4), (32, 3))):
            x = nn.relu(nn.Conv(filters, (size, size), strides=2, padding="SAME", name=f"conv_{i}")(x))
        x = jnp.concatenate([x.reshape(x.shape[0], -1), flat[:, h * w * c:]], axis=-1)
        out = nn.Dense(self.features, kernel_init=torch_default_kernel(), bias_init=torch_default_bias(x.shape[-1]),
                       name="project")(x)
        return out.reshape(*lead, self.features)


def observation_embed(
    features: int, obs_dim: int, kind: ObsEncoder, image_shape: tuple[int, int, int] | None, name: str
) -> nn.Module:
    """The first layer over an observation: linear (PyTorch-default init) or `ImageEmbed`."""
    if kind == "cnn":
        if image_shape is None:
            raise ValueError("the 'cnn' observation encoder needs an image environment (image_shape is None)")
        return ImageEmbed(features, image_shape, name=name)
    return torch_linear(features, obs_dim, name)
