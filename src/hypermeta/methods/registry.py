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


SEQUENCE_NAMES: dict[str, str] = {"gru": "GRU", "lstm": "LSTM", "transformer": "Transformer", "lru": "LRU"}
"""`ModelConfig.sequence` -> how reports name it (the keys are `networks.encoder.SEQUENCE_MODELS`'s)."""


def run_label(method: str, sequence: str = "gru") -> str:
    """The name a method run with a sequence model is reported under: the method's CLI name
    with the paper's GRU, else METHOD:SEQUENCE ('rnn-hn:transformer'), a different method in
    reports (`paper_label`)."""
    return get_method(method).name if sequence == "gru" else f"{get_method(method).name}:{sequence}"


def paper_label(label: str) -> str:
    """The paper's name of a `run_label`: 'RNN+HN'; the RNN family with another sequence model
    takes its name ('Transformer+HN', 'LRU+S', 'LSTM'), other methods add it ('VI+HN (LRU)')."""
    method, _, sequence = label.partition(":")
    name = get_method(method).paper_name
    if not sequence:
        return name
    model = SEQUENCE_NAMES[sequence]
    return model + name[3:] if name.startswith("RNN") else f"{name} ({model})"
