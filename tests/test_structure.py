"""The package's shape: small functions and imports that flow one way (read from the source, nothing runs)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hypermeta"
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, ast.Module]:
    """Dotted module name -> parsed source, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), filename=str(path))
    return found


def runtime_nodes(tree: ast.AST):
    """Every node of `tree` except those under `if TYPE_CHECKING:` (imports for type hints only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *runtime_nodes(child)])
            continue
        yield node
        yield from runtime_nodes(node)


def imports(name: str, tree: ast.Module, known: set[str], type_only: bool = False) -> set[str]:
    """The package modules `name` imports anywhere in its source at run time (lazy imports
    included), and with `type_only` also those imported for type hints only."""
    out = set()
    for node in (ast.walk(tree) if type_only else runtime_nodes(tree)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def test_no_function_is_longer_than_80_lines():
    long = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for name, tree in modules().items() for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long


def import_graph(type_only: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports. A package's __init__ importing its own
    submodules is not a dependency of theirs on it."""
    trees = modules()
    graph = {name: imports(name, tree, set(trees), type_only) for name, tree in trees.items()}
    return {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = stack[stack.index(node):]
            del stack[stack.index(node):]
            if len(group) > 1:
                found.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(found)


# Circles closed only by imports for type hints: none since the collectors are driven by the
# learner's pure functions (`LearnerSteps`) and read `RunState` from its own module. Keep it empty.
KNOWN_TYPE_ONLY_CIRCLES: list[list[str]] = []


def test_type_only_import_circles_do_not_grow():
    assert circles(import_graph(type_only=True)) == KNOWN_TYPE_ONLY_CIRCLES


def test_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_package_imports_have_no_circle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(nxt):] + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_config_is_a_schema_without_project_imports():
    tree = modules()["hypermeta.config"]
    assert not imports("hypermeta.config", tree, set(modules())), "config.py must not import the package"


@pytest.mark.parametrize("word", ["on_host", "HostTrainer"])
def test_retired_names_are_gone(word):
    users = [name for name, tree in modules().items() if word in ast.unparse(tree)]
    assert not users, f"{word!r} in {users}"


@pytest.mark.parametrize("module", ["hypermeta.training.learner", "hypermeta.training.loop"])
def test_the_learner_and_the_loop_never_ask_which_collector_or_environment_they_have(module):
    """They take a collector (`make_collector` picks one by type); no kind is named in them."""
    kinds = {"HostEnvironment", "Environment", "JaxOnHost", "HostCollector", "JaxCollector"}
    names = {node.id for node in ast.walk(modules()[module]) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(modules()[module]) if isinstance(node, ast.Attribute)}
    assert not names & kinds, sorted(names & kinds)


METHOD_PARTS = {"encoder", "policy_input", "task_target", "pretrain"}


def test_no_code_branches_on_a_method_part_by_name():
    """A method's parts carry their behaviour (`hypermeta.methods.base`): nothing compares one
    with a name such as `method.encoder == "elbo"`, so a new part needs no edit elsewhere."""
    def part_vs_name(a: ast.AST, b: ast.AST) -> bool:
        return isinstance(a, ast.Attribute) and a.attr in METHOD_PARTS and isinstance(b, ast.Constant)

    found = [f"{name}:{node.lineno}: {ast.unparse(node)}"
             for name, tree in modules().items() if name != "hypermeta.methods.base"
             for node in ast.walk(tree) if isinstance(node, ast.Compare)
             for a, b in [(node.left, node.comparators[0])] if part_vs_name(a, b) or part_vs_name(b, a)]
    assert not found, found
