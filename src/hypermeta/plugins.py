"""Extension points: your environments, methods, sequence models and families of settings,
without editing this package.

Three ways to make something known, all resolved by name where it is needed:

1. **Register it from Python** before training (`hypermeta.training.loop.train`, or your own
   script around the library):

       from hypermeta.plugins import register_env
       register_env("my-bandit", lambda: MyBandit(arms=5), reference_returns={"optimal": 9.0})

2. **Name it on the command line** as `MODULE:ATTRIBUTE`; the module is imported when the
   name is looked up, nothing is registered:

       hypermeta train --env my_package.envs:make_bandit --method rnn-hn
       hypermeta train --env grid-world --model.sequence my_package.models:MyRNN \\
           --model.sequence-options width=64

   `--env` takes a callable returning the environment (a class, a function), or an object
   with `make()` and optionally `family` and `reference_returns` attributes.
   `--model.sequence` takes a `SequenceModel` subclass; its config dataclass, if any, is its
   `config_class` attribute.

3. **Install a plug-in**: a distribution declaring an entry point in the group
   `hypermeta.plugins`, a callable taking no argument that calls the `register_*` functions:

       # pyproject.toml of your package
       [project.entry-points."hypermeta.plugins"]
       my-plugin = "my_package.hypermeta_plugin:register"

   Installed plug-ins are loaded once per process, lazily: when a name is not registered,
   and when `hypermeta ... --help` lists the names (`load_plugins`).

Sweeps on Ray run their cells in other processes, possibly on other machines. Names of kind
2 and 3 resolve there by themselves (the module or plug-in must be importable on the
workers); a `register_*` call made only in the driver's process is not seen by the cells,
so call it from an installed plug-in, or name the object as MODULE:ATTRIBUTE, for sweeps.

A broken plug-in fails with one line naming it and what is wrong: an import error, a
factory that raises, an environment without a task sampler or whose functions return
shapes unlike its declared spaces (`hypermeta.validate` checks them over shapes only), a
sequence model class without the `SequenceModel` interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hypermeta.config import TrainConfig
from hypermeta.envs.base import EnvironmentBase
from hypermeta.envs.registry import ENVIRONMENTS, PLUGIN_FAMILY, EnvSpec, checked_factory
from hypermeta.errors import UsageError
from hypermeta.families import FAMILIES
from hypermeta.methods.base import Method
from hypermeta.methods.registry import METHODS, canonical, find_method
from hypermeta.networks.sequence import SequenceModel
from hypermeta.networks.sequence_registry import SEQUENCE_MODELS, SequenceSpec, check_sequence_class
from hypermeta.plugin_loading import load_entry_points

__all__ = ["register_env", "register_method", "register_sequence_model", "register_family", "load_plugins"]


def _check_name(kind: str, name: Any, registry: Mapping[str, Any], replace: bool) -> None:
    """A plug-in's name: a non-empty string without spaces or ':' (which spells adapters'
    PREFIX:NAME and MODULE:ATTRIBUTE names), not taken unless `replace`."""
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or ":" in name:
        raise UsageError(f"{kind} name {name!r}: use a non-empty name without spaces or ':'")
    # Installed plug-ins first: a name one of them takes clashes here, at the caller's own
    # registration (where replace=True settles it), not later inside an unrelated lookup.
    load_entry_points(raise_failures=False)
    if name in registry and not replace:
        raise UsageError(f"{kind} {name!r} is already registered; pass replace=True to replace it")


def register_env(name: str, make: Callable[[], EnvironmentBase], *, family: str | None = None,
                 reference_returns: Mapping[str, float] | None = None, replace: bool = False) -> None:
    """Register the environment `name` (`--env name`).

    `make()` returns a new environment: a JAX `hypermeta.envs.base.Environment` (pure
    `sample_task`, `reset`, `step`; trained inside the compiled rollout) or a
    `hypermeta.envs.host.HostEnvironment` (gymnasium task envs stepped in Python). It is
    called whenever the environment is needed, so keep it cheap. `family` names the settings
    its runs start from (a key of `hypermeta.families.FAMILIES`, or one added by
    `register_family`); None: "generic" (`hypermeta.families.GENERIC`, derived from the
    paper's Cheetah settings). `reference_returns` (name -> return per trial) are drawn on
    learning curves. An existing name is refused unless `replace`."""
    _check_name("environment", name, ENVIRONMENTS, replace)
    if not callable(make):
        raise UsageError(f"environment {name!r}: make must be a callable returning the environment, got {make!r}")
    family = PLUGIN_FAMILY if family is None else family
    if family not in FAMILIES:
        raise UsageError(f"environment {name!r}: unknown family {family!r}; families: {', '.join(FAMILIES)} "
                         f"(register_family adds one)")
    returns = {str(k): float(v) for k, v in (reference_returns or {}).items()}
    ENVIRONMENTS[name] = EnvSpec(checked_factory(name, make), family, returns, plugin=name)


def register_method(method: Method, *, replace: bool = False) -> None:
    """Register `method` (`--method method.name`; its `paper_name` is accepted too and names
    it in reports, e.g. "MyNet+HN").

    A method is a `hypermeta.methods.base.Method`, a composition of choices the agent and
    the trainer read (conditioning, what trains the encoder, task targets, pre-training);
    see that module. Its `name` is lowercase with dashes (what `METHODS` is keyed by; names
    are looked up in any spelling: 'MyNet+HN' finds 'mynet-hn'). A name or paper name taken
    by another method is refused; the same name is replaced only with `replace`."""
    if not isinstance(method, Method):
        raise UsageError(f"register_method takes a hypermeta.methods.base.Method, got {type(method).__name__}")
    _check_name("method", method.name, {}, replace)
    if canonical(method.name) != method.name:
        raise UsageError(f"method name {method.name!r} must be lowercase with dashes: {canonical(method.name)!r}")
    found = [m for m in (find_method(method.name), find_method(method.paper_name)) if m is not None]
    other = next((m for m in found if m.name != method.name), None)
    if other is not None:
        raise UsageError(f"method {method.name!r} ({method.paper_name}): that name is taken by the registered "
                         f"method {other.name!r} ({other.paper_name})")
    if found and not replace:
        raise UsageError(f"method {method.name!r} is already registered; pass replace=True to replace it")
    METHODS[method.name] = method


def register_sequence_model(name: str, cls: type[SequenceModel], *, config: type | None = None,
                            label: str | None = None, replace: bool = False) -> None:
    """Register the sequence model `name` (`--model.sequence name`), for every method's
    trajectory encoder (`--method rnn-hn --model.sequence name`).

    `cls` subclasses `hypermeta.networks.sequence.SequenceModel` (a flax module; see that
    module for the interface: `initial_carry`, `step`, `features`, trial resets). `config`
    is its config dataclass (default: `cls.config_class`, which is None for a model without
    settings), set from the
    command line as `--model.sequence-options KEY=VALUE ...` and stored with the run;
    `cls.from_config(config, trial_steps)` builds the model (default: the config's fields
    are the module's fields of the same names). `label` names it in reports ("MyRNN" makes
    RNN+HN "MyRNN+HN"; default: the class's name). An existing name is refused unless `replace`."""
    _check_name("sequence model", name, SEQUENCE_MODELS, replace)
    check_sequence_class(name, cls)
    config = cls.config_class if config is None else config
    if config is not None and not (isinstance(config, type) and hasattr(config, "__dataclass_fields__")):
        raise UsageError(f"sequence model {name!r}: config must be a dataclass, got {config!r}")
    SEQUENCE_MODELS[name] = SequenceSpec(cls, label or cls.__name__, config, plugin=name)


def register_family(name: str, defaults: TrainConfig, *, replace: bool = False) -> None:
    """Register the family of settings `name`: `defaults` is the `TrainConfig` its
    environments' runs start from (model sizes, PPO, budget; the command line overrides it
    field by field; `env` and `method` are filled in per run). Register it before the
    environments naming it. An existing name is refused unless `replace`."""
    _check_name("family", name, FAMILIES, replace)
    if not isinstance(defaults, TrainConfig):
        raise UsageError(f"family {name!r}: defaults must be a hypermeta.config.TrainConfig, got {type(defaults).__name__}")
    FAMILIES[name] = defaults


def load_plugins() -> None:
    """Load the installed plug-ins (entry-point group `hypermeta.plugins`) now, if not yet
    loaded in this process. Not needed before a lookup: the registries load them when a name
    is unknown, when they list names (--help) and before a registration."""
    load_entry_points()
