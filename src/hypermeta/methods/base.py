"""What a method is: a composition of independent choices, read by the agent and the trainer.

* `conditioning`: how the policy network combines the state with its conditioning
  embedding (latent only, concatenation, or a hypernetwork).
* `encoder`: what trains the trajectory encoder: PPO through the latent ("rl", end to
  end), the ELBO of a variational encoder with the latent stop-gradiented into the
  policy ("elbo", VariBAD-type), or nothing ("none": the policy never reads it).
* `policy_input`: what the conditioning embedding is made from outside pre-training:
  the encoder's latent, or the true task c_M (the multi-task oracle).
* `task_target`: what task inference reconstructs: nothing, the raw task vector c_M,
  the learned task embedding g(c_M), or the base-network parameters that the
  hypernetwork generates for g(c_M). With an "elbo" encoder a decoder reads a sample
  of the bottleneck; with an "rl" encoder the policy's own conditioning (its latent
  embedding, or the generated base network) is pulled towards the target by an
  auxiliary loss added to PPO (paper appendix 8.3).
* `pretrain`: multi-task pre-training of the policy on g(c_M) for the first
  `InferenceConfig.pretrain_updates` updates of the budget; afterwards the policy
  either starts again from fresh parameters ("reset", with task inference frozen
  during pre-training) or keeps them ("reuse", the paper's "++", task inference
  trained throughout).

No training code branches on a method's name: a new method is a new `Method` value
and one registry line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hypermeta.networks.hyper import HyperInit

Conditioning = Literal["latent", "state+latent", "hyper"]
EncoderObjective = Literal["rl", "elbo", "none"]
PolicyInput = Literal["latent", "task"]
TaskTarget = Literal["none", "task", "embedding", "base-net"]
Pretrain = Literal["none", "reset", "reuse"]


@dataclass(frozen=True)
class Method:
    """A meta-RL method, as the agent network and the trainer need to know it."""

    name: str
    """CLI name (lowercase, dashes)."""
    paper_name: str
    """The paper's spelling (Table 1), also accepted on the command line."""
    conditioning: Conditioning
    """latent: the policy sees only the conditioning embedding (RL^2). state+latent: state
    and conditioning embeddings concatenated. hyper: a hypernetwork maps the conditioning
    embedding to every weight and bias of the actor and critic base networks, which see
    only the state."""
    hyper_init: HyperInit = "bias"
    encoder: EncoderObjective = "rl"
    policy_input: PolicyInput = "latent"
    task_target: TaskTarget = "none"
    pretrain: Pretrain = "none"
    description: str = ""

    def __post_init__(self) -> None:
        if self.task_target == "base-net" and self.conditioning != "hyper":
            raise ValueError(f"{self.name}: a base-net target needs a hypernetwork")
        if self.task_target == "task" and self.encoder == "rl":
            raise ValueError(f"{self.name}: an end-to-end latent cannot be compared with the raw task")
        if self.task_target == "embedding" and self.pretrain == "none":
            raise ValueError(f"{self.name}: the task embedding g(c) is only learned by pre-training")

    @property
    def variational(self) -> bool:
        """VariBAD-type: the encoder is a Gaussian bottleneck trained by the ELBO."""
        return self.encoder == "elbo"

    @property
    def reads_state(self) -> bool:
        """The policy embeds the state (all but RNN, whose policy sees only the latent), so its
        state-embedding size matters."""
        return self.conditioning != "latent"

    @property
    def uses_task_embedding(self) -> bool:
        """The policy reads g(c_M) at some point (pre-training or always)."""
        return self.policy_input == "task" or self.pretrain != "none"

    @property
    def has_aux_loss(self) -> bool:
        """End to end + task inference: a weighted inference loss is added to PPO."""
        return self.encoder == "rl" and self.task_target != "none"
