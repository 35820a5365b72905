"""Tests of the agent's networks: the bilinear hypernetwork layer, its two
initialisations, how each method conditions the policy, the method registry and the
action distributions."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.config import GRUConfig, ModelConfig
from hypermeta.envs.base import Discrete
from hypermeta.errors import UsageError
from hypermeta.methods import METHODS, get_method
from hypermeta.networks.agent import Agent
from hypermeta.networks.distributions import Categorical, DiagGaussian
from hypermeta.networks.hyper import HyperDense
from hypermeta.networks.init import normc

MODEL = ModelConfig(gru=GRUConfig(32), policy_state_embed=16, policy_latent_embed=8, policy_hidden=(32, 16))
OBS_DIM = 3  # grid-world (x, y) + the trial wrapper's done bit
N_ACTIONS = 5
LATENT = 2 * MODEL.latent_dim
TANH_GAIN = 5.0 / 3.0


def perturb(params, seed: int, scale: float = 0.3):
    """Add N(0, scale^2) noise to every parameter (so zero-initialised heads become active).

    numpy noise: a jax.random call per leaf would compile one program per shape."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(np.asarray(p) + scale * rng.normal(size=p.shape), p.dtype), params)


@functools.cache
def make_agent(method: str, seed: int = 0):
    """(agent, params) for a small agent on a grid-world sized problem."""
    agent = Agent(MODEL, get_method(method), Discrete(N_ACTIONS), OBS_DIM)
    # Only the policy's parameter group (no encoder): less to compile, the same values.
    init = jax.jit(lambda key, obs, latent: agent.policy_net.init(
        key, obs, latent, method=lambda net, o, z: net(o, net.embed_latent(z))))
    params = {"policy": init(jax.random.PRNGKey(seed), jnp.zeros((2, OBS_DIM)), jnp.zeros((2, LATENT)))["params"]}
    return agent, params


@functools.cache
def _policy_fn(agent):
    return jax.jit(lambda params, obs, latent: agent.policy(params, obs, agent.embed_latent(params, latent)))


def policy_out(agent, params, obs, latent):
    dist, value = _policy_fn(agent)(params, obs, latent)
    return np.asarray(dist.logits), np.asarray(value)


def random_obs_latent(seed: int, batch=(6,)):
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-2.0, 2.0, (*batch, OBS_DIM)).astype(np.float32)
    latent = rng.normal(size=(*batch, LATENT)).astype(np.float32)
    return jnp.asarray(obs), jnp.asarray(latent)


# --------------------------------------------------------------------------- bilinear hypernetwork


@pytest.mark.parametrize("n_out", [3, 6], ids=["wide-input", "narrow-input"])  # both evaluation orders
@pytest.mark.parametrize("hyper_init", ["bias", "kaiming"])
@pytest.mark.parametrize("lead", [(), (3,), (4, 3)])
def test_hyperdense_equals_per_sample_generated_network(lead, hyper_init, n_out):
    n_in, n_embed = 4, 5
    layer = HyperDense(n_out, hyper_init, normc(1.0))
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(*lead, n_in)), jnp.float32)
    e = jnp.asarray(rng.normal(size=(*lead, n_embed)), jnp.float32)
    params = layer.init(jax.random.PRNGKey(1), x, e)
    params = perturb(params, 2, scale=0.5)  # every head non-zero
    p = jax.tree.map(np.asarray, params["params"])
    assert p["w_head"].shape == (n_in * n_embed, n_out)
    assert all(np.abs(v).min() > 0 for v in p.values())

    y = np.asarray(layer.apply(params, x, e))
    assert y.shape == (*lead, n_out)

    xs = np.asarray(x, np.float64).reshape(-1, n_in)
    es = np.asarray(e, np.float64).reshape(-1, n_embed)
    flat_y = y.reshape(-1, n_out)
    heads = p["w_head"].astype(np.float64).reshape(n_in, n_embed, n_out)
    w_all, b_all = jax.jit(HyperDense.generated_params)(params["params"], jnp.asarray(es, jnp.float32))
    for n in range(xs.shape[0]):
        # (1) from the layer's own explicit weight generation
        w_gen, b_gen = np.asarray(w_all[n]), np.asarray(b_all[n])
        np.testing.assert_allclose(flat_y[n], xs[n] @ w_gen + b_gen, rtol=1e-4, atol=1e-4)
        # (2) independently from the raw parameters, in float64
        w = np.zeros((n_in, n_out))
        for j in range(n_embed):
            w += es[n, j] * heads[:, j, :]
        w += p["w_const"]
        b = es[n] @ p["b_head"] + p["b_const"]
        np.testing.assert_allclose(np.asarray(w_gen), w, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(flat_y[n], xs[n] @ w + b, rtol=1e-4, atol=1e-4)


def test_hyperdense_generated_params_batched():
    """generated_params with a batch of embeddings gives one weight per embedding."""
    layer = HyperDense(3, "kaiming", normc(1.0))
    x, e = jnp.ones((2, 4)), jnp.ones((2, 5))
    params = perturb(layer.init(jax.random.PRNGKey(0), x, e), 1)["params"]
    es = jnp.asarray(np.random.default_rng(2).normal(size=(7, 5)), jnp.float32)
    w, b = HyperDense.generated_params(params, es)
    assert w.shape == (7, 4, 3) and b.shape == (7, 3)
    for n in range(7):
        w1, b1 = HyperDense.generated_params(params, es[n])
        np.testing.assert_allclose(w[n], w1, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(b[n], b1, rtol=1e-6, atol=1e-6)


def test_hyperdense_rejects_unknown_init():
    layer = HyperDense(3, "xavier", normc(1.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="xavier"):
        layer.init(jax.random.PRNGKey(0), jnp.ones((4,)), jnp.ones((5,)))


# --------------------------------------------------------------------------- Bias-HyperInit


def _hyper_layers(params, base: str):
    p = params["policy"]
    names = sorted((k for k in p if k.startswith(f"{base}_")), key=lambda k: int(k.split("_")[1]))
    assert len(names) == len(MODEL.policy_hidden) + 1
    return [jax.tree.map(np.asarray, p[n]) for n in names]


def test_bias_hyperinit_policy_ignores_latent_and_equals_base_network():
    agent, params = make_agent("rnn-hn")
    obs, latent = random_obs_latent(3)
    logits, value = policy_out(agent, params, obs, latent)
    for seed in (4, 5):
        other = 10.0 * random_obs_latent(seed)[1]
        logits2, value2 = policy_out(agent, params, obs, other)
        np.testing.assert_array_equal(logits2, logits)
        np.testing.assert_array_equal(value2, value)

    # The plain base network by hand: tanh(state_embed(obs)) -> tanh layers with
    # weights w_const and zero biases -> linear head.
    p = params["policy"]
    se = p["state_embed"]
    x0 = np.tanh(np.asarray(obs, np.float64) @ np.asarray(se["kernel"]) + np.asarray(se["bias"]))

    def base(layers):
        x = x0
        for i, layer in enumerate(layers):
            x = x @ layer["w_const"]
            if i < len(layers) - 1:
                x = np.tanh(x)
        return x

    np.testing.assert_allclose(logits, base(_hyper_layers(params, "actor")), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(value, base(_hyper_layers(params, "critic"))[:, 0], rtol=1e-4, atol=1e-5)
    assert np.abs(value).max() > 0  # the critic head template is not zero


def test_bias_hyperinit_parameters():
    _, params = make_agent("rnn-hn")
    for base in ("actor", "critic"):
        layers = _hyper_layers(params, base)
        for i, layer in enumerate(layers):
            assert np.all(layer["w_head"] == 0), f"{base}_{i} w_head"
            assert np.all(layer["b_head"] == 0), f"{base}_{i} b_head"
            assert np.all(layer["b_const"] == 0), f"{base}_{i} b_const"
            assert np.abs(layer["w_const"]).max() > 0
        # hidden layers: normc(5/3), each output unit's incoming weights have norm 5/3
        for layer in layers[:-1]:
            norms = np.linalg.norm(layer["w_const"], axis=0)
            np.testing.assert_allclose(norms, TANH_GAIN, rtol=1e-5)
        assert layers[0]["w_const"].shape == (MODEL.policy_state_embed, MODEL.policy_hidden[0])
    # categorical head: orthogonal with gain 0.01
    head = _hyper_layers(params, "actor")[-1]["w_const"].astype(np.float64)
    assert head.shape == (MODEL.policy_hidden[-1], N_ACTIONS)
    gram = head.T @ head if head.shape[0] >= head.shape[1] else head @ head.T
    np.testing.assert_allclose(gram, 0.01**2 * np.eye(gram.shape[0]), atol=1e-8)
    # critic head: PyTorch default U(+-1/sqrt(fan_in))
    critic_head = _hyper_layers(params, "critic")[-1]["w_const"]
    assert np.abs(critic_head).max() <= 1 / math.sqrt(MODEL.policy_hidden[-1]) + 1e-7


def test_kaiming_hyperinit_depends_on_latent():
    agent, params = make_agent("rnn-hn-kaiming")
    bound = TANH_GAIN * math.sqrt(3.0 / MODEL.policy_latent_embed)
    for base in ("actor", "critic"):
        for layer in _hyper_layers(params, base):
            assert np.all(layer["w_const"] == 0) and np.all(layer["b_const"] == 0)
            for head in (layer["w_head"], layer["b_head"]):
                assert np.abs(head).max() <= bound + 1e-6
                assert np.abs(head).max() > 0.5 * bound  # really spread over the range, not all zero
    obs, latent = random_obs_latent(3)
    logits, value = policy_out(agent, params, obs, latent)
    logits2, value2 = policy_out(agent, params, obs, random_obs_latent(9)[1])
    assert np.abs(logits - logits2).max() > 1e-4
    assert np.abs(value - value2).max() > 1e-4


# --------------------------------------------------------------------------- methods


def _sensitivity(agent, params, seed):
    """How much the policy output moves when only obs / only the latent changes."""
    obs, latent = random_obs_latent(seed)
    obs2, latent2 = random_obs_latent(seed + 1)
    base = policy_out(agent, params, obs, latent)
    d_obs = [np.abs(a - b).max() for a, b in zip(base, policy_out(agent, params, obs2, latent), strict=True)]
    d_lat = [np.abs(a - b).max() for a, b in zip(base, policy_out(agent, params, obs, latent2), strict=True)]
    return d_obs, d_lat


def test_rnn_policy_sees_only_the_latent():
    agent, params = make_agent("rnn")
    assert "state_embed" not in params["policy"]
    params = perturb(params, 11)
    d_obs, d_lat = _sensitivity(agent, params, 12)
    assert d_obs == [0.0, 0.0]
    assert min(d_lat) > 1e-3


@pytest.mark.parametrize("method", ["rnn-s", "rnn-hn", "rnn-hn-kaiming"])
def test_state_methods_see_obs_and_latent(method):
    agent, params = make_agent(method)
    params = perturb(params, 11)
    d_obs, d_lat = _sensitivity(agent, params, 12)
    assert min(d_obs) > 1e-3, d_obs
    assert min(d_lat) > 1e-3, d_lat


def test_rnn_s_concatenates_state_and_latent_embeddings():
    _, params = make_agent("rnn-s")
    p = params["policy"]
    assert p["actor_0"]["kernel"].shape[0] == MODEL.policy_state_embed + MODEL.policy_latent_embed
    assert p["critic_0"]["kernel"].shape[0] == MODEL.policy_state_embed + MODEL.policy_latent_embed


@pytest.mark.parametrize(
    "spelling, name",
    [
        ("RNN+HN", "rnn-hn"),
        ("RNN+S", "rnn-s"),
        ("RNN", "rnn"),
        ("RNN+HN_Kaiming", "rnn-hn-kaiming"),
        ("rl2", "rnn"),
        ("RL2", "rnn"),
        ("rnn-hn", "rnn-hn"),
        (" rnn_hn ", "rnn-hn"),
    ],
)
def test_get_method_accepts_paper_spellings(spelling, name):
    assert get_method(spelling) is METHODS[name]


def test_get_method_unknown_names_value_and_lists_allowed():
    with pytest.raises(UsageError) as err:
        get_method("foo")
    msg = str(err.value)
    assert "'foo'" in msg
    for m in METHODS.values():
        assert m.name in msg


def test_methods_registry_conditioning():
    assert METHODS["rnn"].conditioning == "latent"
    assert METHODS["rnn-s"].conditioning == "state+latent"
    assert METHODS["rnn-hn"].conditioning == "hyper" and METHODS["rnn-hn"].hyper_init == "bias"
    assert METHODS["rnn-hn-kaiming"].conditioning == "hyper" and METHODS["rnn-hn-kaiming"].hyper_init == "kaiming"


# --------------------------------------------------------------------------- distributions


def _np_log_softmax(logits):
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_categorical_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3, 5)).astype(np.float32) * 3
    actions = rng.integers(0, 5, size=(4, 3))
    dist = Categorical(jnp.asarray(logits))
    logp = _np_log_softmax(logits.astype(np.float64))
    expected = np.take_along_axis(logp, actions[..., None], -1)[..., 0]
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(actions)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.entropy(), -(np.exp(logp) * logp).sum(-1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(dist.mode(), logits.argmax(-1))
    # Uniform logits: entropy log(5); samples cover the support
    uniform = Categorical(jnp.zeros((5,)))
    np.testing.assert_allclose(uniform.entropy(), np.log(5), rtol=1e-6)
    samples = jax.vmap(uniform.sample)(jax.random.split(jax.random.PRNGKey(0), 500))
    assert set(np.asarray(samples).tolist()) == set(range(5))


def test_diag_gaussian_against_closed_form():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(6, 3)).astype(np.float32)
    log_std = rng.normal(size=(3,)).astype(np.float32) * 0.5
    actions = rng.normal(size=(6, 3)).astype(np.float32)
    dist = DiagGaussian(jnp.asarray(mean), jnp.asarray(log_std))
    std = np.exp(log_std.astype(np.float64))
    expected = np.sum(
        -((actions - mean) ** 2) / (2 * std**2) - np.log(std) - 0.5 * np.log(2 * np.pi), axis=-1
    )
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(actions)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        dist.entropy(), np.full(6, np.sum(0.5 * np.log(2 * np.pi * np.e * std**2))), rtol=1e-5
    )
    np.testing.assert_array_equal(dist.mode(), mean)
    # samples have the right moments
    draws = jax.vmap(DiagGaussian(jnp.asarray(mean[0]), jnp.asarray(log_std)).sample)(
        jax.random.split(jax.random.PRNGKey(0), 20000)
    )
    np.testing.assert_allclose(np.mean(draws, 0), mean[0], atol=0.05)
    np.testing.assert_allclose(np.std(draws, 0), std, rtol=0.05)


def test_diag_gaussian_std_floor():
    dist = DiagGaussian(jnp.zeros((2,)), jnp.full((2,), -50.0))
    # the std is floored at 1e-6: log_prob at the mean = -2 * (log 1e-6 + 0.5 log 2 pi)
    expected = -2 * (np.log(1e-6) + 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(dist.log_prob(jnp.zeros((2,))), expected, rtol=1e-5)


# --------------------------------------------------------------------------- GRU replay


def test_gru_sequence_equals_the_torch_gru_equations_and_their_autodiff_gradients():
    """`gru_scan.gru_sequence` (the replay's GRU with its hand-written backward pass) against
    torch's nn.GRU equations written out here, with every bias (input and hidden) non-zero
    and a reset zeroing the carry: the same hidden states, and the gradients of every
    parameter, the inputs and the initial state within float rounding, with trial starts
    inside the sequence."""
    from hypermeta.networks.gru_scan import GATES, gru_sequence

    T, B, F, H = 12, 3, 5, 8
    keys = jax.random.split(jax.random.PRNGKey(0), 4 + len(GATES))
    xs = jax.random.normal(keys[0], (T, B, F))
    h0 = 0.5 * jax.random.normal(keys[1], (B, H))
    resets = jnp.zeros((T, B), bool).at[4, 0].set(True).at[7, 2].set(True)
    params = {g: {"kernel": 0.4 * jax.random.normal(k, (F if g[0] == "i" else H, H)),
                  "bias": 0.3 * jax.random.normal(jax.random.fold_in(k, 1), (H,))}
              for g, k in zip(GATES, keys[4:], strict=True)}
    weights = jax.random.normal(keys[3], (T, B, H))

    def reference(p, h0, xs):
        lin = lambda g, v: v @ p[g]["kernel"] + p[g]["bias"]  # noqa: E731

        def step(h, inputs):
            x, reset = inputs
            h = jnp.where(reset[:, None], 0.0, h)
            r = jax.nn.sigmoid(lin("ir", x) + lin("hr", h))
            z = jax.nn.sigmoid(lin("iz", x) + lin("hz", h))
            n = jnp.tanh(lin("in", x) + r * lin("hn", h))
            h = (1 - z) * n + z * h
            return h, h
        return jax.lax.scan(step, h0, (xs, resets))

    def loss(fn):
        def value(p, h0, xs):
            last, hs = fn(p, h0, xs)
            return jnp.sum(weights * jnp.tanh(hs)) + jnp.sum(last**2)
        return value

    ours = lambda p, h0, xs: gru_sequence(p, h0, xs, resets)  # noqa: E731
    np.testing.assert_allclose(jax.jit(ours)(params, h0, xs)[1], jax.jit(reference)(params, h0, xs)[1],
                               rtol=1e-6, atol=1e-6)
    want = jax.jit(jax.grad(loss(reference), argnums=(0, 1, 2)))(params, h0, xs)
    got = jax.jit(jax.grad(loss(ours), argnums=(0, 1, 2)))(params, h0, xs)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
