"""hypermeta: meta-RL with recurrent hypernetworks (Beck et al., NeurIPS 2023) in JAX.

The command line's commands as Python functions (`hypermeta.api`)::

    import hypermeta

    cfg = hypermeta.configure("grid-world", "rnn-hn", frames=200_000, seeds=(73, 20))
    run = hypermeta.train(cfg, "runs/hn")         # a Run: .config, .metrics, .summary, .runs
    hypermeta.evaluate(run, trials=100)           # an Evaluation; hypermeta eval, results in runs/hn/eval/
    policy = run.policy(seed=73)                  # a trained policy (hypermeta.policy.Policy)
    action = policy.act(obs, reward=r, done=d)    # step by step in your own loop

Also `sweep`, `report`, `load_run`, `TrainConfig`, `UsageError` (every bad name or value) and
the plug-in registrations (`register_env`, `register_method`, `register_sequence_model`,
`register_family`; `hypermeta.plugins`).

Importing the package is cheap: each name is imported on first use (no JAX until then).
The modules behind the functions: `hypermeta.api` (the commands), `hypermeta.policy`,
`hypermeta.plugins`, `hypermeta.config`; the sweep machinery lives in `hypermeta.sweeps`, the
evaluation of saved policies in `hypermeta.evaluation`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "configure": "hypermeta.api",
    "with_overrides": "hypermeta.api",
    "train": "hypermeta.api",
    "sweep": "hypermeta.api",
    "evaluate": "hypermeta.api",
    "report": "hypermeta.api",
    "load_run": "hypermeta.api",
    "Run": "hypermeta.api",
    "Evaluation": "hypermeta.api",
    "Policy": "hypermeta.policy",
    "TrainConfig": "hypermeta.config",
    "UsageError": "hypermeta.errors",
    "register_env": "hypermeta.plugins",
    "register_method": "hypermeta.plugins",
    "register_sequence_model": "hypermeta.plugins",
    "register_family": "hypermeta.plugins",
}
"""Public name -> the module that defines it (imported when the name is first used)."""

__all__ = [
    "configure", "with_overrides", "train", "sweep", "evaluate", "report", "load_run", "Run", "Evaluation", "Policy", "TrainConfig",
    "UsageError", "register_env", "register_method", "register_sequence_model", "register_family", "__version__",
]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later uses are plain attribute lookups
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and editors see for the lazy names
    from hypermeta.api import Evaluation, Run, configure, evaluate, load_run, report, sweep, train, with_overrides
    from hypermeta.config import TrainConfig
    from hypermeta.errors import UsageError
    from hypermeta.plugins import register_env, register_family, register_method, register_sequence_model
    from hypermeta.policy import Policy
