"""How the registries find plug-ins by name: `MODULE:ATTRIBUTE` names and installed entry points.

The registries (`hypermeta.envs.registry.env_spec`, `hypermeta.methods.registry.get_method`,
`hypermeta.networks.sequence_registry.sequence_spec`) call these when a name is not registered:

* `import_object("package.module:factory")` imports the module and returns the attribute
  (dotted attributes allowed), so `--env package.module:factory` and `--model.sequence
  package.module:Class` need no registration at all;
* `load_entry_points()` calls, once per process, every callable that installed
  distributions declare in the entry-point group `hypermeta.plugins` (each calls the
  `hypermeta.plugins.register_*` functions).

Resolution goes by name in whichever process needs it, so the cells of a sweep on Ray (other
processes, other machines) find `MODULE:ATTRIBUTE` names and installed plug-ins by
themselves; only objects registered by a call in the driver's own process are not seen there.

This module sits below the registries and imports nothing from hypermeta but the error type,
so that they can call it without an import circle (`hypermeta.plugins` imports them).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from typing import Any

from hypermeta.errors import UsageError

GROUP = "hypermeta.plugins"
"""The entry-point group of installed plug-ins: `name = package.module:register` in a
distribution's entry points, where `register()` takes no argument."""

_IMPORT_NAME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_loaded = False
_failures: list[str] = []
"""What went wrong with installed plug-ins (load_entry_points), one entry per plug-in."""


def one_line(error: BaseException) -> str:
    """`Type: first line of the message`, at most 200 characters: how a plug-in's exception is quoted."""
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def is_import_name(name: str) -> bool:
    """`name` is spelled MODULE:ATTRIBUTE (dotted Python identifiers on both sides)."""
    return bool(_IMPORT_NAME.match(name))


def import_object(name: str, what: str) -> Any | None:
    """The attribute named by `name` (MODULE:ATTRIBUTE), or None where the module does not
    exist (the name is then simply unknown). A module that exists but fails to import, or
    lacks the attribute, is a broken plug-in: a one-line UsageError naming it. `what`
    names the option in messages ("--env")."""
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # Only a missing module of the name itself (or a package above it) means "no such plug-in";
        # a missing import inside an existing module is the plug-in's own error.
        if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
            return None
        raise UsageError(f"{what} plug-in {name!r}: importing {module_name} failed: {one_line(e)}") from e
    except Exception as e:
        raise UsageError(f"{what} plug-in {name!r}: importing {module_name} failed: {one_line(e)}") from e
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise UsageError(f"{what} plug-in {name!r}: module {module_name} has no attribute {attribute!r}")
        value = getattr(value, part)
    return value


def load_entry_points(raise_failures: bool = True) -> bool:
    """Call every installed plug-in's entry point (group `hypermeta.plugins`), once per process.

    Returns whether this call loaded them (False: already loaded before). Every entry point is
    called even where another fails; the failures (a plug-in that fails to import or raises) are
    kept and, with `raise_failures`, raised as one line naming each plug-in and its distribution,
    at this call and at every later one (a lookup of an unknown name then says which plug-in is
    broken, not only that the name is unknown)."""
    global _loaded
    first = not _loaded
    if first:
        _loaded = True  # first, so that a plug-in whose register() looks names up does not recurse
        for entry in importlib.metadata.entry_points(group=GROUP):
            failure = _call_entry_point(entry)
            if failure:
                _failures.append(failure)
    if _failures and raise_failures:
        raise UsageError("; ".join(_failures))
    return first


def _call_entry_point(entry: importlib.metadata.EntryPoint) -> str:
    """Load and call one entry point; returns what went wrong ("" if nothing)."""
    source = f"plug-in {entry.name!r} ({entry.value}"
    source += f", from {entry.dist.name})" if entry.dist is not None else ")"
    try:
        register = entry.load()
    except Exception as e:
        return f"{source}: importing it failed: {one_line(e)}"
    if not callable(register):
        return f"{source}: an entry point of group {GROUP} must name a callable taking no argument"
    try:
        register()
    except UsageError as e:
        return f"{source}: {e}"
    except Exception as e:
        return f"{source}: calling it failed: {one_line(e)}"
    return ""
