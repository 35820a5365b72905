"""Sequence-model names -> models and their configs: this package's (the GRU, LSTM,
transformer, LRU) and plug-ins' (`hypermeta.plugins.register_sequence_model`, an installed
plug-in's entry point, or `--model.sequence MODULE:CLASS`), with the checks of a plug-in's
interface (`check_sequence_class` at registration, `probe_sequence_model` over shapes in
`hypermeta.validate`). The trajectory encoder (`networks.encoder`) builds its model here."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from hypermeta.config import GRUConfig, LRUConfig, LSTMConfig, ModelConfig, TransformerConfig
from hypermeta.errors import UsageError
from hypermeta.networks.linear_recurrence import LRU
from hypermeta.networks.sequence import GRU, LSTM, SequenceModel
from hypermeta.networks.transformer import Transformer
from hypermeta.plugin_loading import import_object, is_import_name, load_entry_points, one_line


@dataclass(frozen=True)
class SequenceSpec:
    """A sequence model as the encoder builds it and reports name it."""

    cls: type[SequenceModel]
    label: str
    """Its name in reports: 'Transformer' makes RNN+HN 'Transformer+HN' (`methods.registry.paper_label`)."""
    config: type | None = None
    """Its config dataclass (None: it has no settings). A built-in's value is the `ModelConfig`
    field named after it (`model.transformer`); a plug-in's is made from
    `ModelConfig.sequence_options` (`sequence_config`)."""
    plugin: str = ""
    """Where a plug-in came from (its registered name or MODULE:CLASS), for messages and the
    checks `hypermeta.validate` runs on plug-ins only; "" for this package's models."""


SEQUENCE_MODELS: dict[str, SequenceSpec] = {
    "gru": SequenceSpec(GRU, "GRU", GRUConfig),
    "lstm": SequenceSpec(LSTM, "LSTM", LSTMConfig),
    "transformer": SequenceSpec(Transformer, "Transformer", TransformerConfig),
    "lru": SequenceSpec(LRU, "LRU", LRUConfig),
}
"""`ModelConfig.sequence` -> sequence model. This package's: one module plus one line here and
its config in `hypermeta.config`; yours: `hypermeta.plugins.register_sequence_model`, an
installed plug-in, or `--model.sequence MODULE:CLASS` (`sequence_spec`)."""


def sequence_names() -> list[str]:
    """Every registered name (installed plug-ins loaded first), then the MODULE:CLASS pattern."""
    load_entry_points(raise_failures=False)  # a listing lists what loaded; lookups name the broken
    return [*SEQUENCE_MODELS, "MODULE:CLASS (your own, hypermeta.plugins)"]


def sequence_spec(name: str) -> SequenceSpec:
    """The sequence model `name`: registered, MODULE:CLASS (imported and checked; its config
    dataclass is the class's `config_class`), or an installed plug-in's (loaded if the name is
    not registered yet); else a one-line UsageError listing what is allowed."""
    if name in SEQUENCE_MODELS:
        return SEQUENCE_MODELS[name]
    if is_import_name(name):
        found = import_object(name, "--model.sequence")
        if found is not None:
            check_sequence_class(name, found)
            return SequenceSpec(found, found.__name__, found.config_class, name)
    elif load_entry_points() and name in SEQUENCE_MODELS:
        return SEQUENCE_MODELS[name]
    raise UsageError(f"--model.sequence must be one of {', '.join(sequence_names())}, got {name!r}")


def sequence_label(name: str) -> str:
    """How reports name the sequence model `name`, without importing a MODULE:CLASS (a report
    may be made where the plug-in is not installed: then the class's name)."""
    if name not in SEQUENCE_MODELS and not is_import_name(name):
        load_entry_points(raise_failures=False)  # a report names what it can
    if name in SEQUENCE_MODELS:
        return SEQUENCE_MODELS[name].label
    return name.rpartition(":")[2].rpartition(".")[2]


def _defines(cls: type, attribute: str) -> bool:
    """`cls` or a base between it and SequenceModel defines `attribute` itself."""
    return any(attribute in vars(c) for c in cls.__mro__ if c is not SequenceModel and issubclass(c, SequenceModel))


def check_sequence_class(label: str, cls: Any) -> None:
    """A one-line UsageError unless `cls` has the interface the encoder needs: a subclass of
    `SequenceModel` defining `initial_carry`, `step` (or `__call__`), a `features` field, and
    `sequence` where it sets `parallel`."""
    name = getattr(cls, "__name__", type(cls).__name__)
    where = f"sequence model plug-in {label!r}: {name}"
    if not (isinstance(cls, type) and issubclass(cls, SequenceModel)):
        raise UsageError(f"{where} is not a subclass of hypermeta.networks.sequence.SequenceModel "
                         f"(a flax module with initial_carry, step and features)")
    missing = [m for m in ("initial_carry", "step") if not _defines(cls, m)]
    if "step" in missing and _defines(cls, "__call__"):
        missing.remove("step")
    if "features" not in getattr(cls, "__dataclass_fields__", {}) and not _defines(cls, "features"):
        missing.append("features (the width of its output)")
    if cls.parallel and not _defines(cls, "sequence"):
        missing.append("sequence (it sets parallel = True)")
    if missing:
        raise UsageError(f"{where} lacks {', '.join(missing)} of the SequenceModel interface")
    config = cls.config_class
    if config is not None and not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise UsageError(f"{where}: config_class must be a dataclass, got {config!r}")


def sequence_config(model: ModelConfig) -> Any:
    """The config of `model.sequence`: a built-in's `ModelConfig` field of its name, a
    plug-in's config dataclass made from `model.sequence_options` (KEY=VALUE, converted to
    the fields' types), or None for a plug-in without one."""
    spec = sequence_spec(model.sequence)
    if not spec.plugin:
        if model.sequence_options:
            raise UsageError(f"--model.sequence-options sets a plug-in's config; {model.sequence}'s sizes are "
                             f"--model.{model.sequence}.* (e.g. --model.gru.size)")
        return getattr(model, model.sequence)
    if spec.config is None:
        if model.sequence_options:
            raise UsageError(f"--model.sequence-options: sequence model {spec.plugin!r} takes no options")
        return None
    return _options_config(spec, model.sequence_options)


def _options_config(spec: SequenceSpec, options: tuple[str, ...]) -> Any:
    """`spec.config` with the KEY=VALUE `options` set (dashes in keys read as underscores)."""
    assert spec.config is not None
    fields = [f.name for f in dataclasses.fields(spec.config)]
    hints = typing.get_type_hints(spec.config)
    values = {}
    for item in options:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise UsageError(f"--model.sequence-options {item!r}: write KEY=VALUE with KEY one of "
                             f"{', '.join(fields)} ({spec.plugin})")
        values[key] = _parse_option(item, text.strip(), hints[key])
    try:
        return spec.config(**values)
    except Exception as e:
        raise UsageError(f"--model.sequence-options: sequence model {spec.plugin!r}: {one_line(e)}") from e


def _parse_option(item: str, text: str, kind: Any) -> Any:
    """`text` as a value of the type `kind`: int, float, bool, str, a Literal's value, an
    optional or union of them ("none" for None), or a tuple of them (comma-separated)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        parts = [p for p in text.split(",") if p]
        return tuple(_parse_option(item, p, args[0]) for p in parts)
    if origin is typing.Literal:
        found = [a for a in args if str(a) == text]
        if not found:
            raise UsageError(f"--model.sequence-options {item!r}: {text!r} is not one of {', '.join(map(str, args))}")
        return found[0]
    if origin is typing.Union or origin is types.UnionType:
        if text.lower() == "none" and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _parse_option(item, text, option)
            except UsageError:
                continue
        raise UsageError(f"--model.sequence-options {item!r}: {text!r} is not a {kind}")
    try:
        if kind is bool:
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[text.lower()]
        if kind in (int, float, str):
            return kind(text)
    except (KeyError, ValueError):
        raise UsageError(f"--model.sequence-options {item!r}: {text!r} is not a {kind.__name__}") from None
    return text  # other types: the plug-in's config converts the string itself


def sequence_model(model: ModelConfig, trial_steps: int, **kwargs: Any) -> SequenceModel:
    """The encoder's sequence model, `model.sequence` with its config (the paper's: a GRU
    of `model.gru.size` units); `trial_steps` bounds a trial (the transformer's default window)."""
    return sequence_spec(model.sequence).cls.from_config(sequence_config(model), trial_steps, **kwargs)


def module_name(sequence: str) -> str:
    """The flax name of the encoder's sequence model: the model's name ("gru" for the paper's,
    so a checkpoint names its encoder), with what flax paths cannot hold (':', '.', '-') as '_'."""
    return re.sub(r"\W", "_", sequence)


def probe_sequence_model(model: ModelConfig, trial_steps: int, in_features: int) -> None:
    """Build `model.sequence` and run its step and `sequence` over shapes only (`jax.eval_shape`:
    nothing is computed, no backend starts); a one-line UsageError names what does not fit
    the interface. `hypermeta.validate` runs it on plug-ins."""
    label = sequence_spec(model.sequence).plugin or model.sequence
    where = f"sequence model plug-in {label!r}"
    try:
        seq = sequence_model(model, trial_steps, parent=None)
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(f"{where}: from_config raised {one_line(e)}") from e
    features = getattr(seq, "features", None)
    if not isinstance(features, int) or features < 1:
        raise UsageError(f"{where}: features must be a positive int (the width of its output), got {features!r}")
    batch, steps = 2, 3
    x, reset = jax.ShapeDtypeStruct((batch, in_features), jnp.float32), jax.ShapeDtypeStruct((batch,), jnp.bool_)
    xs, resets = (jax.ShapeDtypeStruct((steps, *a.shape), a.dtype) for a in (x, reset))
    try:
        carry = jax.eval_shape(lambda: seq.initial_carry((batch,)))
        params = jax.eval_shape(seq.init, jax.eval_shape(jax.random.PRNGKey, 0), carry, x, reset)
        stepped, y = jax.eval_shape(seq.apply, params, carry, x, reset)
        scanned, ys = jax.eval_shape(partial(seq.apply, method=type(seq).sequence), params, carry, xs, resets)
    except Exception as e:
        raise UsageError(f"{where}: its initial_carry/step/sequence failed on inputs of shape (2, {in_features}): "
                         f"{one_line(e)}") from e
    for what, got, want in (("step", y.shape, (batch, features)), ("sequence", ys.shape, (steps, batch, features))):
        if got != want:
            raise UsageError(f"{where}: its {what} returns outputs of shape {got}, expected {want} (features {features})")
    for what, new in (("step", stepped), ("sequence", scanned)):
        if jax.tree.structure(new) != jax.tree.structure(carry) or [a.shape for a in jax.tree.leaves(new)] != [
                a.shape for a in jax.tree.leaves(carry)]:
            raise UsageError(f"{where}: its {what} returns a carry shaped unlike initial_carry's")
