"""What a method is: a composition of independent choices, each a small object that
carries its own behaviour, read by the agent and the trainer.

* `conditioning`: how the policy network combines the state with its conditioning
  embedding (latent only, concatenation, or a hypernetwork; `networks.policies`).
* `encoder` (`methods.encoder_objectives`): what trains the trajectory encoder, with its
  latents and its loss: PPO through the latent (end to end), the ELBO of a variational
  encoder with the latent stop-gradiented into the policy (VariBAD-type), or nothing.
* `policy_input` (`methods.policy_inputs`): what the conditioning embedding is made from
  outside pre-training: the encoder's latent, or the true task c_M (the multi-task oracle).
* `task_target` (`methods.task_targets`): what task inference reconstructs: nothing, the
  raw task vector c_M, the learned task embedding g(c_M), or the base-network parameters
  that the hypernetwork generates for g(c_M).
* `pretrain` (`methods.pretraining`): multi-task pre-training of the policy on g(c_M)
  for the first `InferenceConfig.pretrain_updates` updates; afterwards the policy starts
  again from fresh parameters ("reset") or keeps them ("reuse", the paper's "++").

Each part may be given by its name ("elbo", "embedding", "reuse", ...) or as an object,
including one of your own (a subclass). No training code branches on a method's name: a
new method is a new `Method` value and one registry line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from hypermeta.methods import encoder_objectives, policy_inputs, pretraining, task_targets
from hypermeta.methods.encoder_objectives import END_TO_END, EncoderObjective
from hypermeta.methods.policy_inputs import LATENT, PolicyInput
from hypermeta.methods.pretraining import NO_PRETRAINING, Pretraining
from hypermeta.methods.task_targets import NO_TARGET, TaskTarget
from hypermeta.networks.hyper import HyperInit

Conditioning = Literal["latent", "state+latent", "hyper"]
PARTS = {"encoder": encoder_objectives.BY_NAME, "policy_input": policy_inputs.BY_NAME,
         "task_target": task_targets.BY_NAME, "pretrain": pretraining.BY_NAME}
PART_TYPES = {"encoder": EncoderObjective, "policy_input": PolicyInput, "task_target": TaskTarget,
              "pretrain": Pretraining}


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
    # Each part below may also be given by its name (`PARTS`); it is stored as the object.
    encoder: EncoderObjective = END_TO_END
    policy_input: PolicyInput = LATENT
    task_target: TaskTarget = NO_TARGET
    pretrain: Pretraining = NO_PRETRAINING
    description: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value, by_name = getattr(self, f.name), PARTS.get(f.name)
            if by_name is None:
                continue
            if isinstance(value, str):
                if value not in by_name:
                    raise ValueError(f"{self.name}: unknown {f.name} {value!r}; choose one of: {', '.join(by_name)}")
                object.__setattr__(self, f.name, by_name[value])
            elif not isinstance(value, PART_TYPES[f.name]):
                raise ValueError(f"{self.name}: {f.name} {value!r} is neither one of {', '.join(by_name)} "
                                 f"nor an object of type {PART_TYPES[f.name].__name__}")
        problem = self.task_target.check(self.conditioning, self.encoder, self.pretrain)
        if problem:
            raise ValueError(f"{self.name}: {problem}")

    @property
    def variational(self) -> bool:
        """VariBAD-type: the encoder is a Gaussian bottleneck trained by the ELBO (it has decoders)."""
        return self.encoder.variational

    @property
    def reads_state(self) -> bool:
        """The policy embeds the state (all but RNN, whose policy sees only the latent), so its
        state-embedding size matters."""
        return self.conditioning != "latent"

    @property
    def uses_task_embedding(self) -> bool:
        """The policy reads g(c_M) at some point (pre-training or always)."""
        return self.policy_input.reads_task or self.pretrain.uses_task_embedding
