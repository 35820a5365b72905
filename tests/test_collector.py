"""The collector contract: the learner takes whatever collector it is given, and picks one by the environment's type."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from hypermeta.config import GRUConfig, ModelConfig, PPOConfig, TrainConfig
from hypermeta.envs.grid_world import GridWorld
from hypermeta.envs.host import JaxOnHost
from hypermeta.envs.trial import TrialWrapper
from hypermeta.errors import UsageError
from hypermeta.training.collectors.base import first_carry
from hypermeta.training.collectors.host_collector import HostCollector
from hypermeta.training.collectors.jax_collector import JaxCollector
from hypermeta.training.collectors.registry import make_collector
from hypermeta.training.learner import Learner

CFG = TrainConfig(env="grid-world", method="rnn-hn", model=ModelConfig(gru=GRUConfig(8), policy_state_embed=4,
                  policy_latent_embed=4, policy_hidden=(8,)), ppo=PPOConfig(num_envs=2, num_steps=5, minibatches=1))


class FakeCollector:
    """Records what the learner asks of it."""

    def __init__(self):
        self.calls = []

    def initial_carry(self, agent, key, num_envs):
        self.calls.append(("initial_carry", num_envs))
        env = GridWorld()
        obs = jnp.full((num_envs, TrialWrapper(env, env.episodes_per_trial).observation_space.shape[0]), 7.0)
        real = JaxCollector(TrialWrapper(env, env.episodes_per_trial), CFG).initial_carry(agent, key, num_envs)
        return first_carry(agent, real.trial_state, obs)

    def compile_chunk(self, steps, parallel_runs=0):
        self.calls.append(("compile_chunk", parallel_runs))
        return "the fake's chunk"

    def close(self):
        self.calls.append(("close",))


def test_the_learner_uses_the_collector_it_is_given():
    fake = FakeCollector()
    learner = Learner(CFG, env=GridWorld(), collector=fake)
    state = learner.init(jnp.int32(0), jnp.float32(1e-3))
    assert bool(jnp.all(state.carry.obs == 7.0))  # the run starts from the fake's carry
    assert learner.compile_chunk(3) == "the fake's chunk"
    assert fake.calls == [("initial_carry", 2), ("compile_chunk", 3)]


def test_collectors_are_chosen_by_the_environment_type():
    env = GridWorld()
    wrapper = TrialWrapper(env, env.episodes_per_trial)
    assert isinstance(make_collector(env, wrapper, CFG), JaxCollector)
    assert isinstance(make_collector(JaxOnHost(env), wrapper, CFG), HostCollector)
    assert isinstance(Learner(CFG, env=JaxOnHost(env)).collector, HostCollector)
    with pytest.raises(TypeError, match="no collector for str"):
        make_collector("not an environment", wrapper, CFG)


def test_a_new_kind_of_environment_registers_its_collector(monkeypatch):
    """The table is explicit: a registered kind gets its own collector, and so do its
    subclasses (nearest class first); other environments keep theirs."""
    from hypermeta.training.collectors import registry

    class MyKind(GridWorld):
        pass

    class MyKindVariant(MyKind):
        pass

    monkeypatch.setattr(registry, "COLLECTORS", dict(registry.COLLECTORS))
    made = []
    registry.register_collector(MyKind, lambda env, wrapper, cfg: made.append(type(env).__name__) or FakeCollector())
    with pytest.raises(UsageError, match="^a collector for MyKind is already registered; pass replace=True"):
        registry.register_collector(MyKind, lambda env, wrapper, cfg: None)
    wrapper = TrialWrapper(GridWorld(), GridWorld().episodes_per_trial)
    assert isinstance(make_collector(MyKindVariant(), wrapper, CFG), FakeCollector)
    assert isinstance(make_collector(GridWorld(), wrapper, CFG), JaxCollector)
    assert made == ["MyKindVariant"]


def test_a_host_collector_says_when_it_is_used_before_compile_chunk():
    collector = Learner(CFG, env=JaxOnHost(GridWorld())).collector
    with pytest.raises(RuntimeError, match="compile_chunk"):
        collector.agent  # noqa: B018
