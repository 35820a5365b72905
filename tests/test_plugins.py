"""Extension points (`hypermeta.plugins`): run directories of the flat model config still
load; an environment and a sequence model of another package trained through the library,
the command line (`--env MODULE:FACTORY`) and an installed entry point; methods and
families registered; every broken plug-in is one line naming it and what is wrong.

The plug-in is examples/plugin_package (the package `hypermeta_bandit`), as another package
would write it; the broken plug-ins are defined at the end of this module and named by its
module path."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
import pytest

import hypermeta
from hypermeta import plugin_loading
from hypermeta.config import GRUConfig, LRUConfig, LSTMConfig, ModelConfig, TrainConfig, TransformerConfig
from hypermeta.envs.base import Box, Discrete, Environment
from hypermeta.envs.host import JaxOnHost
from hypermeta.envs.registry import ENVIRONMENTS, env_spec, environment_names, make_env
from hypermeta.errors import UsageError
from hypermeta.families import FAMILIES, GENERIC, family_defaults, method_defaults
from hypermeta.methods.base import Method
from hypermeta.methods.registry import METHODS, get_method, paper_label, run_label
from hypermeta.networks.sequence import SequenceModel
from hypermeta.networks.sequence_registry import SEQUENCE_MODELS, sequence_config, sequence_model
from hypermeta.plugins import register_env, register_family, register_method, register_sequence_model
from hypermeta.validate import validate

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PLUGIN_ROOT = REPO / "examples" / "plugin_package"  # holds hypermeta_bandit
sys.path.insert(0, str(PLUGIN_ROOT))  # as the subprocesses get it through PYTHONPATH
import hypermeta_bandit as tiny_env  # noqa: E402

ENV = "hypermeta_bandit:make"
HERE = __name__  # this module, where the broken plug-ins live: f"{HERE}:raising"


@pytest.fixture(autouse=True)
def registries():
    """Every registry as it was before the test, and installed plug-ins not loaded yet."""
    saved = [(r, dict(r)) for r in (ENVIRONMENTS, METHODS, SEQUENCE_MODELS, FAMILIES)]
    loaded, failures = plugin_loading._loaded, list(plugin_loading._failures)
    plugin_loading._loaded = True  # this environment's own installed plug-ins (none) stay out of the way
    plugin_loading._failures.clear()
    yield
    for registry, items in saved:
        registry.clear()
        registry.update(items)
    plugin_loading._loaded = loaded
    plugin_loading._failures[:] = failures


def tiny(env: str = ENV, method: str = "rnn-hn", **model) -> TrainConfig:
    """A few updates of small networks: 4 envs x 8 steps (one trial of 2 x 4 pulls) per update."""
    base = method_defaults(env, method)
    return dataclasses.replace(
        base, frames=4 * 8 * 6, seeds=(0,), lr=(1e-2,), eval_interval=2, eval_trials=4, checkpoint_interval=2,
        model=dataclasses.replace(base.model, gru=GRUConfig(8), policy_state_embed=8, policy_latent_embed=4,
                                  policy_hidden=(8,), **model),
        ppo=dataclasses.replace(base.ppo, num_envs=4, num_steps=8, minibatches=2),
        inference=dataclasses.replace(base.inference, pretrain_updates=0))


def example_entry_points() -> str:
    """The entry points examples/plugin_package/pyproject.toml declares, as entry_points.txt lines."""
    project = tomllib.loads((PLUGIN_ROOT / "pyproject.toml").read_text())["project"]
    return "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["hypermeta.plugins"].items())


def install_dist_info(site: Path, name: str, entry_points: str) -> Path:
    """What `pip install` leaves for entry points to be found: a *.dist-info on a path entry."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hypermeta.plugins]\n{entry_points}")
    return info


# --------------------------------------------------------------------------- old run directories


def test_old_flat_model_keys_load_into_each_sequence_models_config():
    """A config.json written before each sequence model owned its config: gru_size (also the
    LSTM's size then), transformer_* and lru_* land in their model's config, and the result
    round-trips through to_dict/from_dict."""
    old = TrainConfig().to_dict()
    for name in ("gru", "lstm", "transformer", "lru", "sequence_options"):
        del old["model"][name]
    old["model"].update(sequence="lstm", gru_size=16, transformer_dim=32, transformer_layers=3, transformer_heads=2,
                        transformer_window=8, lru_dim=24, lru_state=12, lru_layers=1)
    cfg = TrainConfig.from_dict(json.loads(json.dumps(old)))
    assert cfg.model == ModelConfig(sequence="lstm", gru=GRUConfig(16), lstm=LSTMConfig(16),
                                    transformer=TransformerConfig(32, 3, 2, 8), lru=LRUConfig(24, 12, 1))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_differences_name_the_setting_and_ignore_sequence_models_not_used():
    """An old GRU run (gru_size 128, so its migrated LSTM size is 128 too) against today's
    configuration with the same GRU: no difference (the LSTM is not used); a changed GRU size
    is named by its path; a damaged section is an error, not default sizes."""
    old = TrainConfig().to_dict()
    for name in ("gru", "lstm", "transformer", "lru", "sequence_options"):
        del old["model"][name]
    old["model"]["gru_size"] = 128
    stored = TrainConfig.from_dict(json.loads(json.dumps(old)))
    assert stored.model.lstm.size == 128
    assert TrainConfig(model=ModelConfig(gru=GRUConfig(128))).differences(stored) == []
    assert TrainConfig().differences(stored) == ["model.gru.size"]
    assert TrainConfig(model=ModelConfig(sequence="lstm")).differences(stored) == [
        "model.sequence", "model.lstm.size", "model.gru.size"]
    broken = TrainConfig().to_dict()
    broken["model"]["gru"] = None
    with pytest.raises(TypeError, match="model.gru must be a dict"):
        TrainConfig.from_dict(broken)


def test_sequence_options_parse_optionals_and_literals():
    from typing import Literal

    from hypermeta.networks.sequence_registry import _parse_option

    assert _parse_option("w=64", "64", int | None) == 64 and _parse_option("w=none", "none", int | None) is None
    assert _parse_option("a=relu", "relu", Literal["tanh", "relu"]) == "relu"
    with pytest.raises(UsageError, match=r"^--model.sequence-options 'a=gelu': 'gelu' is not one of tanh, relu$"):
        _parse_option("a=gelu", "gelu", Literal["tanh", "relu"])


def test_every_stored_run_directory_config_still_loads():
    """The config.json of every run directory kept under docs/results (flat keys, some from
    before the transformer and LRU existed) loads, with the sizes it was trained with."""
    paths = sorted((REPO / "docs" / "results").rglob("config.json"))
    assert len(paths) >= 10
    for path in paths:
        data = json.loads(path.read_text())
        cfg = TrainConfig.from_dict(data)
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg, path
        if "gru_size" in data["model"]:  # written before each sequence model owned its config
            assert cfg.model.gru.size == data["model"]["gru_size"] == cfg.model.lstm.size, path
        if "transformer_dim" in data["model"]:
            assert cfg.model.transformer == TransformerConfig() and cfg.model.lru == LRUConfig(), path


# --------------------------------------------------------------------------- environments


def test_module_factory_names_resolve_with_the_generic_family():
    spec = env_spec(ENV)
    assert spec.family == "generic" and spec.plugin == ENV and spec.reference_returns == {}
    assert isinstance(make_env(ENV), tiny_env.TwoArmedBandit)
    assert isinstance(env_spec("hypermeta_bandit:TwoArmedBandit").make(), tiny_env.TwoArmedBandit)
    assert family_defaults(ENV) == dataclasses.replace(GENERIC, env=ENV)
    assert ENV not in ENVIRONMENTS  # resolved by name every time, in every process
    for name in (ENV, f"{HERE}:host"):  # a JAX and a host environment pass every check
        validate(dataclasses.replace(family_defaults(name), method="rnn-hn"))


def test_registered_env_and_sequence_model_train_through_the_library(tmp_path):
    """RNN+HN with a registered sequence model (4 units set through sequence-options) on a
    registered environment: the run trains, records the plug-in's names and options, and the
    encoder's parameters are the plug-in's."""
    from hypermeta.training.learner import Learner
    from hypermeta.training.loop import train

    register_env("tiny-bandit", tiny_env.TwoArmedBandit, reference_returns={"optimal": 7.0})
    register_sequence_model("elman", tiny_env.Elman)
    cfg = tiny("tiny-bandit", sequence="elman", sequence_options=("features=4",))
    params = jax.eval_shape(Learner(cfg).init, jnp.asarray(0), jnp.asarray(1e-2)).params["encoder"]
    assert params["elman"]["h"]["kernel"].shape == (4, 4)  # the options reached the plug-in's module
    run = train(cfg, tmp_path / "run")
    with open(run.path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["update"]) for r in rows] == [2, 4, 6]
    stored = TrainConfig.from_dict(json.loads((run.path / "config.json").read_text()))
    assert stored.env == "tiny-bandit" and stored.model.sequence_options == ("features=4",)
    assert paper_label(run_label("rnn-hn", "elman")) == "Elman+HN"
    # From Python the options may be a dict, as the plug-in's config would take them.
    as_dict = hypermeta.configure("tiny-bandit", "rnn-hn", model={"sequence": "elman", "sequence_options": {"features": 4}})
    assert as_dict.model.sequence_options == ("features=4",)
    assert as_dict == hypermeta.configure("tiny-bandit", "rnn-hn", model={"sequence": "elman", "sequence_options": "features=4"})


def test_cli_trains_a_module_factory_env_and_an_entry_point_env(tmp_path):
    """Two `hypermeta train` processes at once: `--env hypermeta_bandit:make`, and `--env
    two-armed-bandit` registered by the entry point of the example distribution installed on a
    temporary path (its *.dist-info with the entry points its pyproject.toml declares) with its
    sequence model `elman`."""
    site = tmp_path / "site"
    install_dist_info(site, "hypermeta-bandit", example_entry_points())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(PLUGIN_ROOT), os.environ.get("PYTHONPATH", "")])}
    small = ["--method", "rnn-hn", "--frames", "96", "--seeds", "0", "--eval-interval", "3", "--eval-trials", "2",
             "--model.gru.size", "8", "--model.policy-hidden", "8", "--ppo.num-envs", "4", "--ppo.num-steps", "8"]
    runs = {"factory": ["--env", ENV], "entry-point": ["--env", "two-armed-bandit", "--model.sequence", "elman",
                                                       "--model.sequence-options", "features=4"]}
    started = time.monotonic()
    procs = {name: subprocess.Popen([sys.executable, "-m", "hypermeta.cli", "train", *argv, *small,
                                     "--out", str(tmp_path / name)], env=env, cwd=tmp_path, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, argv in runs.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name}: {err[-3000:]}"
        stored = json.loads((tmp_path / name / "config.json").read_text())
        assert stored["env"] == runs[name][1] and (tmp_path / name / "summary.json").exists()
    assert json.loads((tmp_path / "entry-point" / "config.json").read_text())["model"]["sequence"] == "elman"
    print(f"two CLI runs: {time.monotonic() - started:.0f} s")


def test_entry_points_load_once_when_a_name_is_unknown(tmp_path, monkeypatch):
    """A distribution's entry point registers its names when they are listed (--help) or
    looked up unknown, once per process; one that raises is named in one line."""
    site = tmp_path / "site"
    info = install_dist_info(site, "hypermeta-bandit", example_entry_points())
    monkeypatch.syspath_prepend(str(site))
    plugin_loading._loaded = False
    assert "two-armed-bandit" in environment_names()  # what --help lists: installed plug-ins loaded
    del ENVIRONMENTS["two-armed-bandit"], SEQUENCE_MODELS["elman"]
    plugin_loading._loaded = False
    assert env_spec("two-armed-bandit").reference_returns == {"Bayes-optimal": 7.5, "random": 4.0}  # an unknown name
    assert "elman" in SEQUENCE_MODELS
    assert plugin_loading.load_entry_points() is False  # loaded once: registering again would refuse the names
    # A plug-in whose entry point fails is named in one line.
    (info / "entry_points.txt").write_text(f"[hypermeta.plugins]\nbad = {HERE}:raising\n")
    plugin_loading._loaded = False
    plugin_loading._failures.clear()
    with pytest.raises(UsageError, match=rf"^plug-in 'bad' \({HERE}:raising, from hypermeta-bandit\): "
                                         r"calling it failed: RuntimeError: no licence for the simulator$"):
        get_method("no-such-method")


def test_a_broken_plug_in_does_not_hide_the_others_and_stays_named(tmp_path, monkeypatch):
    """Entry points: a failing one first, a good one after. The good one's names are registered;
    the broken one is named at the first lookup of an unknown name and at every later one."""
    install_dist_info(tmp_path / "site", "two-plugins", f"bad = {HERE}:raising\n" + example_entry_points())
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    plugin_loading._loaded = False
    for _ in range(2):
        with pytest.raises(UsageError, match=r"^plug-in 'bad' .*no licence for the simulator$"):
            env_spec("no-such-env")
    assert "two-armed-bandit" in ENVIRONMENTS and "elman" in SEQUENCE_MODELS


# --------------------------------------------------------------------------- methods, families, names


def test_registered_method_family_and_the_refusal_of_taken_names():
    mine = Method("my-net-hn", "MyNet+HN", conditioning="hyper")
    register_method(mine)
    assert get_method("MyNet+HN") is mine and get_method("my_net_hn") is mine
    assert paper_label(run_label("MyNet+HN", "lru")) == "MyNet+HN (LRU)"
    with pytest.raises(UsageError, match=r"^method 'my-net-hn' is already registered; pass replace=True"):
        register_method(mine)
    register_method(dataclasses.replace(mine, description="v2"), replace=True)
    assert get_method("my-net-hn").description == "v2"
    with pytest.raises(UsageError, match="taken by the registered method 'rnn-hn'"):
        register_method(Method("rnn-hn-2", "RNN+HN", conditioning="hyper"))
    with pytest.raises(UsageError, match="lowercase with dashes"):
        register_method(Method("My_Net", "Mine", conditioning="hyper"))

    register_family("bandits", dataclasses.replace(GENERIC, frames=50_000))
    register_env("bandit-2", tiny_env.TwoArmedBandit, family="bandits")
    assert family_defaults("bandit-2").frames == 50_000
    for register, name in ((lambda: register_env("grid-world", tiny_env.make), "environment 'grid-world'"),
                           (lambda: register_sequence_model("gru", tiny_env.Elman), "sequence model 'gru'"),
                           (lambda: register_family("grid-world", GENERIC), "family 'grid-world'")):
        with pytest.raises(UsageError, match=f"^{name} is already registered; pass replace=True to replace it$"):
            register()
    register_sequence_model("gru", tiny_env.Elman, replace=True)
    assert sequence_model(ModelConfig(), trial_steps=8).features == 16  # the plug-in's default config
    with pytest.raises(UsageError, match="unknown family 'nope'"):
        register_env("bandit-3", tiny_env.make, family="nope")
    with pytest.raises(UsageError, match="without spaces or ':'"):
        register_env("gymnax:mine", tiny_env.make)


def test_a_method_named_module_colon_attribute_is_imported_and_registered(tmp_path, monkeypatch):
    """`--method MODULE:ATTRIBUTE` (as `--env` and `--model.sequence`): the Method value is used
    and registered under its own name, so the labels of its runs resolve; anything else is one line."""
    (tmp_path / "my_methods.py").write_text(
        "from hypermeta.methods.base import Method\n"
        "KAIMING_TI = Method('kaiming-ti-plug', 'Kaiming+TI', 'hyper', 'kaiming', task_target='embedding',"
        " pretrain='reuse')\n"
        "NOT_A_METHOD = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(METHODS, "kaiming-ti-plug", None)  # removed again after the test
    method = get_method("my_methods:KAIMING_TI")
    assert method.name == "kaiming-ti-plug" and METHODS["kaiming-ti-plug"] is method
    assert method.task_target.decoded and method.encoder.trained_by_ppo  # names resolved to the parts
    assert paper_label(run_label("my_methods:KAIMING_TI")) == "Kaiming+TI"
    assert method_defaults("grid-world", "my_methods:KAIMING_TI").method == "my_methods:KAIMING_TI"
    with pytest.raises(UsageError, match=r"^method plug-in 'my_methods:NOT_A_METHOD': int is not a hypermeta"):
        get_method("my_methods:NOT_A_METHOD")
    with pytest.raises(UsageError, match="^unknown method 'no_such_module:X'"):
        get_method("no_such_module:X")


def test_a_new_kind_of_task_target_is_a_subclass_and_bad_parts_are_one_line():
    """A method part of one's own is an object: a TaskTarget subclass giving `dim` and `value`
    gets a task decoder of its size in an ELBO method; anything else is refused when the Method
    is made, naming the part and what is allowed."""
    from hypermeta.methods.task_targets import TaskTarget
    from hypermeta.training.learner import Learner

    class FirstCoordinate(TaskTarget):
        def dim(self, agent):
            return 1

        def value(self, agent, params, norms, task):
            return task[..., :1]

    method = Method("vi-first", "VI first", "hyper", encoder="elbo", task_target=FirstCoordinate("first"))
    register_method(method, replace=True)
    try:
        cfg = dataclasses.replace(method_defaults("grid-world", "vi-first"), frames=960)
        agent = Learner(cfg).agent
        assert agent.task_target_dim == 1 and agent.decoders.task is not None and agent.decoders.task_dim == 1
    finally:
        del METHODS["vi-first"]
    for parts, message in ((dict(encoder=None), "encoder None is neither one of rl, elbo, none nor an object of "
                                                "type EncoderObjective"),
                           (dict(task_target="nope"), "unknown task_target 'nope'; choose one of: none, task"),
                           (dict(task_target="base-net"), "a base-net target needs pre-training")):
        with pytest.raises(ValueError, match=f"^bad: {message}"):
            Method("bad", "Bad", "hyper", **parts)


def test_sequence_names_and_options_are_checked_in_one_line():
    with pytest.raises(UsageError, match=r"^--model.sequence must be one of gru, lstm, transformer, lru, "
                                         r"MODULE:CLASS .*, got 'mamba'$"):
        validate(dataclasses.replace(TrainConfig(), model=ModelConfig(sequence="mamba")))
    named = ModelConfig(sequence="hypermeta_bandit:Elman", sequence_options=("features=6",))
    assert sequence_config(named) == tiny_env.ElmanConfig(6)
    bad = {("width=6",): "write KEY=VALUE with KEY one of features", ("features=six",): "'six' is not a int"}
    for options, message in bad.items():
        with pytest.raises(UsageError, match=message):
            sequence_config(dataclasses.replace(named, sequence_options=options))
    with pytest.raises(UsageError, match=r"sets a plug-in's config; gru's sizes are --model.gru.\*"):
        sequence_config(ModelConfig(sequence_options=("size=3",)))


# --------------------------------------------------------------------------- broken plug-ins

# The broken plug-ins: each is named by this module's path, f"{HERE}:raising".


def raising() -> tiny_env.TwoArmedBandit:
    raise RuntimeError("no licence for the simulator\nsecond line of the traceback text")


class NoTasks:
    """Steps like an environment, but has no task sampler."""

    def reset(self, key, task):
        return jnp.zeros((2,)), None

    def step(self, key, state, action, task):
        return jnp.zeros((2,)), None, 0.0, True, {}


@dataclasses.dataclass(frozen=True)
class AbstractNoTasks(Environment):
    """An `Environment` subclass that forgot `sample_task`: cannot be instantiated."""

    max_episode_steps: int = 4
    episodes_per_trial: int = 1

    observation_space = Box(0.0, 1.0, (2,))
    action_space = Discrete(2)
    task_dim = 1

    def reset(self, key, task):
        return jnp.zeros((2,)), None

    def step(self, key, state, action, task):
        return jnp.zeros((2,)), None, jnp.zeros(()), jnp.ones((), bool), {}


def host() -> JaxOnHost:
    """The bandit as a host (gymnasium) environment: a good plug-in of the host kind."""
    return JaxOnHost(tiny_env.TwoArmedBandit())


@dataclasses.dataclass(frozen=True)
class HostWithoutTasks(JaxOnHost):
    """A host environment whose task envs are plain gymnasium envs: no `sample_task`."""

    def make_task_env(self, split: str, evaluation_index: int | None = None) -> gymnasium.Env:
        return gymnasium.Env()


def host_without_tasks() -> HostWithoutTasks:
    return HostWithoutTasks(tiny_env.TwoArmedBandit())


@dataclasses.dataclass(frozen=True)
class WrongShapes(tiny_env.TwoArmedBandit):
    """Declares observations of shape (2,) and returns (3,)."""

    def reset(self, key, task):
        _, state = super().reset(key, task)
        return jnp.zeros((3,)), state


class NotASequenceModel(nn.Module):
    features: int = 4


class NoStep(SequenceModel):
    features: int = 4

    def initial_carry(self, batch_shape: tuple[int, ...]) -> jax.Array:
        return jnp.zeros((*batch_shape, self.features))


class WideOutput(tiny_env.Elman):
    """Declares `features` units but outputs twice as many."""

    @nn.compact
    def step(self, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = jnp.tanh(nn.Dense(self.features)(jnp.concatenate([x, carry], axis=-1)))
        return h, jnp.concatenate([h, h], axis=-1)


H = re.escape(HERE)
BROKEN_ENVS = {  # --env NAME -> the one line it gets
    f"{HERE}:raising":
        rf"environment plug-in '{H}:raising': its factory raised RuntimeError: no licence for the simulator$",
    f"{HERE}:NoTasks": rf"'{H}:NoTasks': NoTasks has no task sampler: .*sample_task",
    f"{HERE}:AbstractNoTasks": rf"'{H}:AbstractNoTasks': no task sampler: .*sample_task",
    f"{HERE}:host_without_tasks": rf"'{H}:host_without_tasks': its task env Env has no task "
                                  r"sampler: a host task env defines sample_task\(rng\) and task",
    "broken_import_plugin:make":  # written by the test: its import needs a package that is not installed
        r"--env plug-in 'broken_import_plugin:make': importing broken_import_plugin failed: "
        r"ModuleNotFoundError: No module named 'not_a_real_dependency_of_hypermeta'$",
    f"{HERE}:nope": rf"module {H} has no attribute 'nope'$",
    "no_such_package.envs:make": r"^unknown environment 'no_such_package.envs:make'; choose one of: grid-world",
    f"{HERE}:WrongShapes": rf"environment plug-in '{H}:WrongShapes': reset's observation has shape \(3,\), "
                           r"expected \(2,\)",
}


@pytest.mark.parametrize("name", BROKEN_ENVS)
def test_a_broken_environment_plug_in_is_one_line_naming_it(name, tmp_path, monkeypatch):
    (tmp_path / "broken_import_plugin.py").write_text("import not_a_real_dependency_of_hypermeta\n\n\n"
                                                      "def make():\n    raise AssertionError('never reached')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError, match=BROKEN_ENVS[name]) as error:
        validate(dataclasses.replace(TrainConfig(), env=name))
    assert "\n" not in str(error.value)


BROKEN_SEQUENCES = {
    NotASequenceModel: "NotASequenceModel is not a subclass of hypermeta.networks.sequence.SequenceModel",
    NoStep: "NoStep lacks step of the SequenceModel interface",
    WideOutput: r"its step returns outputs of shape \(2, 32\), expected \(2, 16\) \(features 16\)",
}


@pytest.mark.parametrize("cls", BROKEN_SEQUENCES, ids=lambda cls: cls.__name__)
def test_a_broken_sequence_model_is_one_line_naming_it(cls):
    name = f"{HERE}:{cls.__name__}"
    with pytest.raises(UsageError, match=f"^sequence model plug-in '{re.escape(name)}': {BROKEN_SEQUENCES[cls]}") as error:
        validate(dataclasses.replace(TrainConfig(), model=ModelConfig(sequence=name)))
    assert "\n" not in str(error.value)
    if cls is not WideOutput:  # caught at registration too; shapes only where validate probes them
        with pytest.raises(UsageError, match=f"sequence model plug-in 'mine': {BROKEN_SEQUENCES[cls]}"):
            register_sequence_model("mine", cls)


def test_the_command_line_parses_sequence_options_and_nested_sizes():
    """tyro (as `hypermeta train` calls it) reads a free sequence-model name, its KEY=VALUE
    options and the built-in models' nested sizes; the result round-trips through config.json."""
    import tyro

    argv = ["--model.sequence", "hypermeta_bandit:Elman", "--model.sequence-options", "features=5",
            "--model.transformer.window", "7", "--model.gru.size", "12"]
    cfg = tyro.cli(TrainConfig, args=argv, default=method_defaults(ENV, "rnn-hn"))
    assert cfg.model.sequence_options == ("features=5",) and cfg.model.transformer.window == 7
    assert cfg.model.gru == GRUConfig(12) and cfg.model.lstm == LSTMConfig()
    assert cfg.ppo == GENERIC.ppo and cfg.frames == GENERIC.frames  # a plug-in naming no family
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    validate(cfg)
