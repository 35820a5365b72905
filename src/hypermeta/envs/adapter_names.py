"""Parametric environment names of the adapters: `PREFIX:NAME[:KEY=VALUE,KEY=VALUE...]`.

`gymnax:MetaMaze-misc`, `gymnax:CartPole-v1:episodes=2,length=0.25..0.75` or
`xland:XLand-MiniGrid-R1-9x9:benchmark=trivial-21k,episodes=10`: the package's own
environment name, then the adapter's options. The whole string is the run's `env`, so a
run directory records every setting of its environment.
"""

from __future__ import annotations

from hypermeta.errors import UsageError


def split_options(full: str, rest: str, allowed: tuple[str, ...] | None) -> tuple[str, dict[str, str]]:
    """("NAME", {key: value}) from the part of `full` after its prefix. `allowed`: the option
    keys this adapter knows (None: any key; the adapter checks them itself)."""
    name, _, text = rest.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"--env {full!r}: bad option {item!r}; write KEY=VALUE, separated by commas")
        if allowed is not None and key not in allowed:
            raise UsageError(f"--env {full!r}: unknown option {key!r}; allowed: {', '.join(allowed)}")
        options[key] = value
    return name, options


def int_option(full: str, options: dict[str, str], key: str, default: int, minimum: int = 1) -> int:
    """An integer option >= `minimum`, or its default."""
    if key not in options:
        return default
    try:
        value = int(options[key])
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(f"--env {full!r}: {key}={options[key]!r} must be an integer >= {minimum}")
    return value
