"""The sequence-encoder seam and the parameter groups: one replay of the encoder, groups by structure."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypermeta.config import GRUConfig, InferenceConfig, ModelConfig
from hypermeta.envs.base import Box, Discrete
from hypermeta.methods.registry import METHODS, get_method
from hypermeta.networks.agent import PARAM_GROUPS, Agent, group_labels
from hypermeta.networks.encoder import EncoderInputs
from hypermeta.networks.sequence import GRU, LSTM
from hypermeta.training import inference
from hypermeta.training.trial_buffer import Trials

MODEL = ModelConfig(encoder_state_embed=6, encoder_reward_embed=3, encoder_action_embed=2, gru=GRUConfig(8), latent_dim=2,
                    policy_state_embed=5, policy_latent_embed=4, policy_hidden=(6,))
OBS, ACTIONS, T, B = 5, 3, 7, 4


DISCRETE = Discrete(ACTIONS)


def agent_for(method: str, space=DISCRETE) -> Agent:
    return Agent(MODEL, get_method(method), space, OBS, task_dim=2, num_cells=0,
                 inference=InferenceConfig(reward_decoder=(4,), state_decoder=(4,), task_decoder=(4,)))


def random_inputs(key, shape: tuple[int, ...], resets: np.ndarray) -> EncoderInputs:
    k1, k2, k3 = jax.random.split(key, 3)
    return EncoderInputs(jax.random.normal(k1, shape + (ACTIONS,)), jax.random.normal(k2, shape),
                         jax.random.normal(k3, shape + (OBS,)), jnp.asarray(resets))


def test_gru_sequence_equals_its_steps_and_resets_forget_the_past():
    gru = GRU(8)
    xs = jax.random.normal(jax.random.PRNGKey(0), (T, B, 3))
    resets = np.zeros((T, B), bool)
    resets[0] = True
    resets[3, 1] = resets[5, 2] = True
    carry0 = jax.random.normal(jax.random.PRNGKey(1), (B, 8))  # a carry from before the window
    params = gru.init(jax.random.PRNGKey(2), carry0, xs[0], jnp.asarray(resets[0]))
    final, ys = gru.apply(params, carry0, xs, jnp.asarray(resets), method=GRU.sequence)
    carry, steps = carry0, []
    for t in range(T):
        carry, y = gru.apply(params, carry, xs[t], jnp.asarray(resets[t]))
        steps.append(y)
    np.testing.assert_allclose(np.asarray(ys), np.stack(steps), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(final), np.asarray(carry), rtol=1e-6, atol=1e-6)
    # After env 1's reset at step 3, its outputs do not depend on what came before.
    other = xs.at[:3, 1].set(100.0)
    _, ys_other = gru.apply(params, carry0, other, jnp.asarray(resets), method=GRU.sequence)
    np.testing.assert_allclose(np.asarray(ys_other[3:, 1]), np.asarray(ys[3:, 1]), rtol=1e-6, atol=1e-6)
    assert not np.allclose(np.asarray(ys_other[2, 1]), np.asarray(ys[2, 1]))


@pytest.mark.parametrize("cls,gates", [(GRU, "rzn"), (LSTM, "ifgo")])
def test_recurrent_kernels_are_initialised_as_the_authors_stacked_torch_matrices(cls, gates):
    """The authors' `init_rnn` makes torch's stacked weight_ih (G*H x in) and weight_hh
    (G*H x H) orthogonal as whole matrices and zeroes every bias (input and hidden). So
    the stacked hidden kernel has orthonormal columns (in torch's layout) and one gate's
    block has Frobenius norm sqrt(H / G); a gate made orthogonal on its own has sqrt(H)
    (16 at H = 256: the stacked product would be G x the identity)."""
    H, F = 256, 40
    model = cls(H)
    params = model.init(jax.random.PRNGKey(3), model.initial_carry((1,)), jnp.zeros((1, F)), jnp.ones((1,), bool))
    params = params["params"]
    assert set(params) == {k + g for k in "ih" for g in gates}
    for kind, width in (("i", F), ("h", H)):
        stacked = np.concatenate([np.asarray(params[kind + g]["kernel"]) for g in gates], axis=1)  # (in, G*H)
        np.testing.assert_allclose(stacked @ stacked.T, np.eye(width), atol=1e-5)
        for g in gates:
            np.testing.assert_allclose(np.linalg.norm(params[kind + g]["kernel"]), np.sqrt(width / len(gates)),
                                       rtol=0.05)
            np.testing.assert_array_equal(params[kind + g]["bias"], np.zeros(H))
    # The gates' blocks come from one draw, not G independent ones: blocks are not orthogonal alone.
    block = np.asarray(params["h" + gates[0]]["kernel"])
    assert np.abs(block @ block.T - np.eye(H)).max() > 0.3


def test_agent_encode_sequence_equals_the_step_it_acts_with():
    agent = agent_for("rnn-hn")
    resets = np.zeros((T, B), bool)
    resets[0, :2] = resets[4, 3] = True
    inputs = random_inputs(jax.random.PRNGKey(3), (T, B), resets)
    params = agent.init(jax.random.PRNGKey(4), jax.tree.map(lambda x: x[0], inputs), jnp.zeros((B, 2)))
    carry0 = jax.random.normal(jax.random.PRNGKey(5), (B, MODEL.gru.size))
    final, latents = agent.encode_sequence(params, carry0, inputs)
    carry = carry0
    for t in range(T):
        carry, latent = agent.encode(params, carry, jax.tree.map(lambda x, t=t: x[t], inputs))
        np.testing.assert_allclose(np.asarray(latents[t]), np.asarray(latent), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(final), np.asarray(carry), rtol=1e-5, atol=1e-6)


def test_running_hidden_is_the_carry_after_each_trials_own_steps():
    """Right-aligned replay == stepping each unfinished trial through its valid steps from a
    trial start; a trial without steps keeps the initial carry."""
    agent = agent_for("vi")
    n, window = 4, 6
    lengths = np.array([0, 1, 4, 6])
    key = jax.random.PRNGKey(6)
    trials = Trials.zeros(n, window, OBS, ACTIONS, OBS, 2)
    k1, k2, k3 = jax.random.split(key, 3)
    trials = trials.replace(obs=jax.random.normal(k1, trials.obs.shape), action=jax.random.normal(k2, trials.action.shape),
                            reward=jax.random.normal(k3, trials.reward.shape), length=jnp.asarray(lengths, jnp.int32))
    inputs = trials.encoder_inputs()
    params = agent.init(jax.random.PRNGKey(7), jax.tree.map(lambda x: x[0], inputs), jnp.zeros((n, 2)))
    got = np.asarray(inference.running_hidden(agent, params, trials))
    for i, length in enumerate(lengths):
        carry = agent.initial_carry((1,))
        for t in range(length):
            carry, _ = agent.encode(params, carry, jax.tree.map(lambda x, t=t, i=i: x[t, i:i + 1], inputs))
        np.testing.assert_allclose(got[i], np.asarray(carry[0]), rtol=1e-5, atol=1e-6, err_msg=f"trial {i}")
    assert np.all(got[0] == 0)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_parameter_groups_are_the_top_level_modules(method):
    """Every method's parameters are exactly the groups PARAM_GROUPS defines, each holding the
    layers of one module; labels follow the group, whatever a layer is called."""
    space = Box(-1.0, 1.0, (2,)) if method == "vi" else Discrete(ACTIONS)
    agent = agent_for(method, space)
    batch = EncoderInputs(jnp.zeros((B, 2 if method == "vi" else ACTIONS)), jnp.zeros((B,)), jnp.zeros((B, OBS)),
                          jnp.ones((B,), bool))
    params = agent.init(jax.random.PRNGKey(0), batch, jnp.zeros((B, 2)))
    m = get_method(method)
    expected = {"encoder", "policy"} | ({"task_embed"} if m.uses_task_embedding else set()) | (
        {"decoder"} if m.variational else set())
    assert set(params) == expected
    assert {"gru", "enc_head", "enc_state"} <= set(params["encoder"])
    assert {"latent_embed", "actor_0", "critic_0"} <= set(params["policy"])
    ppo = group_labels(params, lambda g: g.ppo)
    elbo = group_labels(params, lambda g: "train" if g.elbo else "freeze")
    for name in params:
        assert set(jax.tree.leaves(ppo[name])) == {PARAM_GROUPS[name].ppo}
        assert set(jax.tree.leaves(elbo[name])) == {"train" if PARAM_GROUPS[name].elbo else "freeze"}
    if m.variational:
        assert set(params["decoder"]) >= {"dec_reward"}


@pytest.mark.parametrize("family,decoder,action_embed", [
    ("cheetah", "dec_reward", 16), ("mc-ls", "dec_reward", 8), ("walker", "dec_state", 32), ("ml10", "dec_state", 16),
])
def test_decoders_have_the_encoders_embedding_sizes_and_torch_initialisation(family, decoder, action_embed):
    """The reference's decoders embed states and actions with the encoder's sizes (its
    `state_embedding_size`, `action_embedding_size`: MC-LS 8, ML10 16, ...) and keep
    PyTorch's nn.Linear initialisation: every weight and bias U(+-1/sqrt(fan_in)), biases
    not zero (flax's default would be lecun-normal kernels and zero biases)."""
    from hypermeta.families import FAMILIES

    cfg = FAMILIES[family]
    obs, actions = OBS, 4
    agent = Agent(cfg.model, get_method("ti-pp-hn"), Box(-1.0, 1.0, (actions,)), obs, task_dim=2,
                  inference=cfg.inference)
    inputs = random_inputs(jax.random.PRNGKey(0), (T, B), np.zeros((T, B), bool))
    inputs = inputs.replace(prev_action=jax.random.normal(jax.random.PRNGKey(1), (T, B, actions)))
    params = agent.init(jax.random.PRNGKey(2), inputs, jnp.zeros((B, 2)))["decoder"]
    embed = params[decoder]["embed_action"]
    assert embed["kernel"].shape == (actions, action_embed)
    assert params[decoder]["embed_state"]["kernel"].shape == (obs, cfg.model.encoder_state_embed)
    layers = {"/".join(str(getattr(k, "key", k)) for k in path[:-1])
              for path, _ in jax.tree_util.tree_leaves_with_path(params)}
    for layer in layers:
        node = params
        for part in layer.split("/"):
            node = node[part]
        if "kernel" not in node:  # the task decoder's output: out_kernel / out_bias
            node = {"kernel": node["out_kernel"], "bias": params["dec_task"]["out_bias"]}
        bound = 1 / np.sqrt(node["kernel"].shape[0])
        for leaf in (node["kernel"], node["bias"]):
            assert 0 < np.abs(leaf).max() <= bound, layer  # biases too are drawn, not zero
            if leaf.size >= 8:
                assert np.abs(leaf).max() > 0.5 * bound, layer  # uniform over the whole range
