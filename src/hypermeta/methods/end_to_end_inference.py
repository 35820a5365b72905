"""End-to-end + task inference (paper appendix 8.3, Figure 15).

An end-to-end recurrent policy (RNN+HN or RNN+S, trained by PPO through the GRU) plus
a task-inference loss weighted by `InferenceConfig.aux_weight`: the RNN's output that
conditions the policy is itself the estimate. There is no bottleneck and no decoder:
for a TI target the policy's latent embedding is compared with g(c_M); for a BI target
the base network the hypernetwork generates from it is compared with the one it
generates from g(c_M). g comes from the same multi-task pre-training as TI++ (reused).
"""

from hypermeta.methods.base import Method
from hypermeta.methods.pretraining import REUSE_POLICY
from hypermeta.methods.task_targets import BASE_NET, TASK_EMBEDDING

RNN_HN_TI = Method(
    "rnn-hn-ti", "RNN+HN+TI", "hyper", task_target=TASK_EMBEDDING, pretrain=REUSE_POLICY,
    description="RNN+HN + weighted inference of g(c) on its latent embedding",
)
RNN_HN_BI = Method(
    "rnn-hn-bi", "RNN+HN+BI", "hyper", task_target=BASE_NET, pretrain=REUSE_POLICY,
    description="RNN+HN + weighted inference of the multi-task base network",
)
RNN_S_TI = Method(
    "rnn-s-ti", "RNN+S+TI", "state+latent", task_target=TASK_EMBEDDING, pretrain=REUSE_POLICY,
    description="RNN+S + weighted inference of g(c) on its latent embedding",
)
