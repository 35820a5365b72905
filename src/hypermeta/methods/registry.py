"""Method names -> Method. A new method is one module plus one line here."""

from __future__ import annotations

from hypermeta.errors import UsageError
from hypermeta.methods.base import Method
from hypermeta.methods.recurrent import RNN, RNN_HN, RNN_HN_KAIMING, RNN_S

METHODS: dict[str, Method] = {m.name: m for m in (RNN, RNN_S, RNN_HN, RNN_HN_KAIMING)}

#: Methods of the paper that later work adds; named so errors can say so.
PLANNED = ("vi", "vi-hn", "ti-naive", "ti", "ti-pp", "ti-hn", "ti-pp-hn", "bi-pp-hn", "multi-hn")


def _canonical(name: str) -> str:
    """'RNN+HN_Kaiming' -> 'rnn-hn-kaiming', 'TI++HN' -> 'ti-pp-hn'."""
    s = name.strip().lower().replace("++", "-pp-").replace("+", "-").replace("_", "-").replace(" ", "-")
    while "--" in s:
        s = s.replace("--", "-")
    return {"rl2": "rnn"}.get(s.strip("-"), s.strip("-"))


def get_method(name: str) -> Method:
    """Look up a method by CLI name or the paper's spelling."""
    key = _canonical(name)
    if key in METHODS:
        return METHODS[key]
    allowed = ", ".join(f"{m.name} ({m.paper_name})" for m in METHODS.values())
    if key in PLANNED:
        raise UsageError(f"method {name!r} is part of the paper but not implemented yet; available: {allowed}")
    raise UsageError(f"unknown method {name!r}; choose one of: {allowed}")
