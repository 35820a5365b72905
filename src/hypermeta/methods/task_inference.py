"""Task-inference and VariBAD methods (paper section 3.3, appendix 8.1, Table 1).

All of them train the encoder with the ELBO of a Gaussian bottleneck (VariBAD) and
stop its gradient into the policy; they differ in what the bottleneck must also
reconstruct and in the multi-task pre-training phase (see `methods.base`).
"""

from hypermeta.methods.base import Method

VI = Method("vi", "VI", "state+latent", encoder="elbo", description="VariBAD: ELBO-trained belief (mu, sigma)")
VI_HN = Method("vi-hn", "VI+HN", "hyper", encoder="elbo", description="VariBAD belief into a hypernetwork")
TI_NAIVE = Method(
    "ti-naive", "TI Naive", "state+latent", encoder="elbo", task_target="task",
    description="VI + a decoder predicting the raw task vector",
)
TI = Method(
    "ti", "TI", "state+latent", encoder="elbo", task_target="embedding", pretrain="reset",
    description="infer g(c) learned by a pre-trained multi-task policy; policy re-initialised",
)
TI_PP = Method(
    "ti-pp", "TI++", "state+latent", encoder="elbo", task_target="embedding", pretrain="reuse",
    description="TI reusing the multi-task policy and its trajectories",
)
TI_HN = Method(
    "ti-hn", "TI+HN", "hyper", encoder="elbo", task_target="embedding", pretrain="reset",
    description="TI with a hypernetwork policy",
)
TI_PP_HN = Method(
    "ti-pp-hn", "TI++HN", "hyper", encoder="elbo", task_target="embedding", pretrain="reuse",
    description="TI++ with a hypernetwork policy (the paper's strongest TI baseline)",
)
BI_PP_HN = Method(
    "bi-pp-hn", "BI++HN", "hyper", encoder="elbo", task_target="base-net", pretrain="reuse",
    description="infer the base network the multi-task hypernetwork generates for the task",
)
MULTI_HN = Method(
    "multi-hn", "Multi+HN", "hyper", encoder="none", policy_input="task",
    description="multi-task oracle: the hypernetwork reads g(c) at every step",
)
