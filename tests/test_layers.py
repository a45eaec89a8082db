"""The layers of ``jaxrl`` (issue 21): shared modules never import an agent or the
run driver, agents never import the run driver, and shared modules form no import
cycle. Read from the source (every import, function-level ones included; imports
under ``if TYPE_CHECKING:`` are for annotations only and are left out)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jaxrl"

WORKFLOW = {
    "jaxrl.cli",
    "jaxrl.experiment",
    "jaxrl.export",
    "jaxrl.presets",
    "jaxrl.rundir",
    "jaxrl.serve",
    "jaxrl.sweep",
    "jaxrl.tune",
}
"""The run driver and what is built on it: command line, scripts' driver, sweeps,
tuning, presets, run directories, export and serving."""


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def layer(name: str) -> str:
    if name in WORKFLOW:
        return "workflow"
    if name == "jaxrl.agents" or name.startswith("jaxrl.agents."):
        return "agents"
    return "shared"


def type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            inside |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return inside


def imports() -> dict[str, set[str]]:
    """Every jaxrl module and the jaxrl modules it imports. The package itself
    (``jaxrl/__init__.py``: the version, and ``jaxrl.load_run`` imported on first
    use) is left out: every ``from jaxrl import x`` runs it."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py") if p != ROOT / "__init__.py"}
    found: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skip = type_checking_blocks(tree)
        targets = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets |= {f"{node.module}.{a.name}" for a in node.names}
        found[name] = {t for t in targets if t in modules and t != name}
    return found


def test_no_module_imports_one_from_a_layer_above_it():
    order = {"shared": 0, "agents": 1, "workflow": 2}
    upward = [
        f"{name} ({layer(name)}) imports {target} ({layer(target)})"
        for name, targets in imports().items()
        for target in sorted(targets)
        if order[layer(target)] > order[layer(name)]
    ]
    assert not upward, upward


def test_shared_modules_form_no_import_cycle():
    graph = {n: {t for t in ts if layer(t) == "shared"} for n, ts in imports().items()}
    graph = {n: ts for n, ts in graph.items() if layer(n) == "shared"}
    done, path = set(), []

    def visit(node):
        if node in path:
            raise AssertionError(" -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        path.append(node)
        for target in sorted(graph[node]):
            visit(target)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_the_check_sees_imports_inside_functions():
    # cem used to import the run driver for one helper inside a function; the check
    # must see such imports wherever they are written.
    found = imports()
    assert "jaxrl.experiment" in found["jaxrl.cli"]  # inside cli.train
    assert "jaxrl.config" in found["jaxrl.agents"]  # inside Agent.capabilities
    assert "jaxrl.checkpoint" not in found["jaxrl.training"]  # TYPE_CHECKING only
