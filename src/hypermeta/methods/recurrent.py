"""The end-to-end recurrent methods (paper section 3.2 and 5): trained only by PPO."""

from hypermeta.methods.base import Method

RNN = Method("rnn", "RNN", "latent", description="RL^2: the policy sees only the GRU latent")
RNN_S = Method("rnn-s", "RNN+S", "state+latent", description="RNN whose policy also sees the state")
RNN_HN = Method(
    "rnn-hn", "RNN+HN", "hyper", "bias", description="recurrent hypernetwork with Bias-HyperInit"
)
RNN_HN_KAIMING = Method(
    "rnn-hn-kaiming", "RNN+HN_Kaiming", "hyper", "kaiming", description="RNN+HN with Kaiming init"
)
