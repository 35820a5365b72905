"""What a method is: a composition of how the policy is conditioned on the trajectory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hypermeta.networks.hyper import HyperInit

Conditioning = Literal["latent", "state+latent", "hyper"]


@dataclass(frozen=True)
class Method:
    """A meta-RL method, as the agent network and the trainer need to know it."""

    name: str
    """CLI name (lowercase, dashes)."""
    paper_name: str
    """The paper's spelling (Table 1), also accepted on the command line."""
    conditioning: Conditioning
    """latent: the policy sees only the RNN latent (RL^2). state+latent: state and latent
    embeddings concatenated. hyper: a hypernetwork maps the latent embedding to every
    weight and bias of the actor and critic base networks, which see only the state."""
    hyper_init: HyperInit = "bias"
    description: str = ""
