"""Method names -> Method. A new method of this package is one module plus one line here; a
method of your own is `hypermeta.plugins.register_method` (or an installed plug-in's entry
point, loaded when a name is not found)."""

from __future__ import annotations

from hypermeta.errors import UsageError
from hypermeta.methods import end_to_end_inference as e2e
from hypermeta.methods import task_inference as ti
from hypermeta.methods.base import Method
from hypermeta.methods.recurrent import RNN, RNN_HN, RNN_HN_KAIMING, RNN_S
from hypermeta.networks.sequence_registry import sequence_label
from hypermeta.plugin_loading import import_object, is_import_name, load_entry_points

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        RNN, RNN_S, RNN_HN, RNN_HN_KAIMING,
        ti.VI, ti.VI_HN, ti.TI_NAIVE, ti.TI, ti.TI_PP, ti.TI_HN, ti.TI_PP_HN, ti.BI_PP_HN, ti.MULTI_HN,
        e2e.RNN_HN_TI, e2e.RNN_HN_BI, e2e.RNN_S_TI,
    )
}


def canonical(name: str) -> str:
    """'RNN+HN_Kaiming' -> 'rnn-hn-kaiming', 'TI++HN' -> 'ti-pp-hn', 'TI Naive' -> 'ti-naive':
    the form every method name and paper spelling is looked up in."""
    s = name.strip().lower().replace("++", "-pp-").replace("+", "-").replace("_", "-").replace(" ", "-")
    while "--" in s:
        s = s.replace("--", "-")
    s = s.strip("-")
    return {"rl2": "rnn", "varibad": "vi"}.get(s, s)


def find_method(name: str) -> Method | None:
    """The registered method whose CLI name or paper spelling is `name` in any spelling
    (`canonical`), else None; looks no further (no plug-ins are loaded)."""
    key = canonical(name)
    if key in METHODS:
        return METHODS[key]
    # A plug-in's paper name need not canonicalise to its CLI name ("MyNet+HN" for "my-net-hn").
    return next((m for m in METHODS.values() if canonical(m.paper_name) == key), None)


def get_method(name: str) -> Method:
    """Look up a method by CLI name or the paper's spelling (installed plug-ins are loaded
    first if it is not registered), or import MODULE:ATTRIBUTE, a `Method` value, which is then
    registered under its own name (so reports of its runs find it)."""
    if is_import_name(name):
        found = import_object(name, "--method")
        if found is not None:
            return _imported_method(name, found)
    method = find_method(name)
    if method is None and load_entry_points():
        method = find_method(name)
    if method is not None:
        return method
    allowed = ", ".join(f"{m.name} ({m.paper_name})" for m in METHODS.values())
    raise UsageError(f"unknown method {name!r}; choose one of: {allowed}")


def method_key(name: str) -> str:
    """How a run records `name`: the method's CLI name ('RNN+HN' and 'rnn-hn' are one run), but
    MODULE:ATTRIBUTE as given, so that a resumed run, a report or a cluster worker imports the
    method again (as `--env MODULE:FACTORY`)."""
    method = get_method(name)  # checks the name (and imports a MODULE:ATTRIBUTE)
    return name if is_import_name(name) else method.name


def _imported_method(name: str, found: object) -> Method:
    """A MODULE:ATTRIBUTE method, checked and registered under its own name."""
    if not isinstance(found, Method):
        raise UsageError(f"method plug-in {name!r}: {type(found).__name__} is not a hypermeta.methods.base.Method")
    taken = METHODS.get(found.name)
    if taken is not None and taken != found:
        raise UsageError(f"method plug-in {name!r}: its name {found.name!r} is taken by another registered method")
    METHODS[found.name] = found
    return found


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
    model = sequence_label(sequence)
    return model + name[3:] if name.startswith("RNN") else f"{name} ({model})"
