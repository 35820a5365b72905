"""Method names -> Method. A new method is one module plus one line here."""

from __future__ import annotations

from hypermeta.errors import UsageError
from hypermeta.methods import end_to_end_inference as e2e
from hypermeta.methods import task_inference as ti
from hypermeta.methods.base import Method
from hypermeta.methods.recurrent import RNN, RNN_HN, RNN_HN_KAIMING, RNN_S

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        RNN, RNN_S, RNN_HN, RNN_HN_KAIMING,
        ti.VI, ti.VI_HN, ti.TI_NAIVE, ti.TI, ti.TI_PP, ti.TI_HN, ti.TI_PP_HN, ti.BI_PP_HN, ti.MULTI_HN,
        e2e.RNN_HN_TI, e2e.RNN_HN_BI, e2e.RNN_S_TI,
    )
}


def _canonical(name: str) -> str:
    """'RNN+HN_Kaiming' -> 'rnn-hn-kaiming', 'TI++HN' -> 'ti-pp-hn', 'TI Naive' -> 'ti-naive'."""
    s = name.strip().lower().replace("++", "-pp-").replace("+", "-").replace("_", "-").replace(" ", "-")
    while "--" in s:
        s = s.replace("--", "-")
    s = s.strip("-")
    return {"rl2": "rnn", "varibad": "vi"}.get(s, s)


def get_method(name: str) -> Method:
    """Look up a method by CLI name or the paper's spelling."""
    key = _canonical(name)
    if key in METHODS:
        return METHODS[key]
    allowed = ", ".join(f"{m.name} ({m.paper_name})" for m in METHODS.values())
    raise UsageError(f"unknown method {name!r}; choose one of: {allowed}")
