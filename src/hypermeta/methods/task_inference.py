"""Task-inference and VariBAD methods (paper section 3.3, appendix 8.1, Table 1).

All of them train the encoder with the ELBO of a Gaussian bottleneck (VariBAD) and
stop its gradient into the policy; they differ in what the bottleneck must also
reconstruct and in the multi-task pre-training phase (see `methods.base`).
"""

from hypermeta.methods.base import Method
from hypermeta.methods.encoder_objectives import ELBO, NO_ENCODER
from hypermeta.methods.policy_inputs import TASK
from hypermeta.methods.pretraining import RESET_POLICY, REUSE_POLICY
from hypermeta.methods.task_targets import BASE_NET, RAW_TASK, TASK_EMBEDDING

VI = Method("vi", "VI", "state+latent", encoder=ELBO, description="VariBAD: ELBO-trained belief (mu, sigma)")
VI_HN = Method("vi-hn", "VI+HN", "hyper", encoder=ELBO, description="VariBAD belief into a hypernetwork")
TI_NAIVE = Method(
    "ti-naive", "TI Naive", "state+latent", encoder=ELBO, task_target=RAW_TASK,
    description="VI + a decoder predicting the raw task vector",
)
TI = Method(
    "ti", "TI", "state+latent", encoder=ELBO, task_target=TASK_EMBEDDING, pretrain=RESET_POLICY,
    description="infer g(c) learned by a pre-trained multi-task policy; policy re-initialised",
)
TI_PP = Method(
    "ti-pp", "TI++", "state+latent", encoder=ELBO, task_target=TASK_EMBEDDING, pretrain=REUSE_POLICY,
    description="TI reusing the multi-task policy and its trajectories",
)
TI_HN = Method(
    "ti-hn", "TI+HN", "hyper", encoder=ELBO, task_target=TASK_EMBEDDING, pretrain=RESET_POLICY,
    description="TI with a hypernetwork policy",
)
TI_PP_HN = Method(
    "ti-pp-hn", "TI++HN", "hyper", encoder=ELBO, task_target=TASK_EMBEDDING, pretrain=REUSE_POLICY,
    description="TI++ with a hypernetwork policy (the paper's strongest TI baseline)",
)
BI_PP_HN = Method(
    "bi-pp-hn", "BI++HN", "hyper", encoder=ELBO, task_target=BASE_NET, pretrain=REUSE_POLICY,
    description="infer the base network the multi-task hypernetwork generates for the task",
)
MULTI_HN = Method(
    "multi-hn", "Multi+HN", "hyper", encoder=NO_ENCODER, policy_input=TASK,
    description="multi-task oracle: the hypernetwork reads g(c) at every step",
)
