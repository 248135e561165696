"""The import structure of app/: the flow parse -> plan -> execute -> report in layers, no
circles, the flow's data types apart from the code that runs them, and no import-time reads
of the environment. Read from the source (ast), so nothing is imported to check it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

# Lower layers never import higher ones. A module not listed takes its package's rank.
LAYERS: dict[str, int] = {
    "app": 0, "app.errors": 0, "app.formats": 0, "app.config": 0,
    "app.tasks": 1, "app.imaging": 1,
    "app.operations": 2,
    "app.pipeline": 3, "app.files": 3, "app.metrics": 3,
    "app.plan": 4, "app.render": 4,
    "app.execute": 5, "app.state": 5,
    "app.service": 6,
    "app.jobs": 7,
    "app.api": 8, "app.cli": 8,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rank(module: str) -> int:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
    return LAYERS[module]


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def module_level_imports(path: Path) -> set[str]:
    """The app modules ``path`` imports when it is imported (not inside functions, not for type checking)."""
    tree = ast.parse(path.read_text())
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and _is_type_checking(node):
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] == "app")
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")
                    parent = parent[:len(parent) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                if base.split(".")[0] != "app":
                    continue
                for alias in node.names:  # ``from . import codec`` imports a module
                    sub = f"{base}.{alias.name}"
                    found.add(sub if (APP.parent / (sub.replace(".", "/") + ".py")).exists()
                              or (APP.parent / sub.replace(".", "/")).is_dir() else base)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse + [s for h in getattr(node, "handlers", []) for s in h.body])
    visit(tree.body)
    found.discard(me)
    return found


MODULES = {module_name(p): p for p in sorted(APP.rglob("*.py"))}
GRAPH = {name: module_level_imports(path) for name, path in MODULES.items()}


def test_the_graph_was_read():
    assert "app.plan" in GRAPH["app.api.routes.process"]
    assert "app.render.worker" in GRAPH["app.execute.backends"]
    assert len(MODULES) > 40


def test_no_import_circles():
    # Importing a package runs its __init__: a module depends on its parents' as well.
    def deps(name: str) -> set[str]:
        out = set(GRAPH.get(name, ()))
        for target in list(out):
            parts = target.split(".")
            out.update(".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in GRAPH)
        return out - {name}

    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(deps(name)):
            if dep in MODULES and not name.startswith(dep + "."):  # a package's own modules may import it
                if state.get(dep) == 1:
                    cycle = stack[stack.index(dep):] + [dep]
                    pytest.fail("import circle: " + " -> ".join(cycle))
                if dep not in state:
                    walk(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(MODULES):
        if name not in state:
            walk(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_lower_layers_do_not_import_higher_ones(name):
    mine = rank(name)
    higher = sorted(dep for dep in GRAPH[name] if rank(dep) > mine)
    assert not higher, f"{name} (layer {mine}) imports {higher}"


def test_only_the_pool_backends_import_the_worker():
    """The flow's data types live in app.tasks: nothing imports the worker to get them."""
    importers = sorted(name for name, deps in GRAPH.items()
                       if "app.render.worker" in deps and name not in ("app.execute.backends", "app.execute.dask"))
    assert importers == []


def test_the_flow_types_import_no_codec():
    source = (APP / "tasks.py").read_text()
    tree = ast.parse(source)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
        n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in ("cv2", "numpy", "PIL")}
    assert not {m for m in GRAPH["app.tasks"] if m.startswith(("app.imaging", "app.render", "app.operations"))}


def _reads_environment(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and n.attr in ("environ", "getenv") and \
                isinstance(n.value, ast.Name) and n.value.id == "os":
            return True
    return False


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_reads_the_environment_when_imported(name):
    tree = ast.parse(MODULES[name].read_text())
    top = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert not any(_reads_environment(n) for n in top), f"{name} reads the environment at import time"


def test_imaging_knows_no_settings_or_environment():
    """Settings reach the image functions as arguments. The one look at the environment:
    libturbojpeg reads its own TJ_* switches, so imaging.planar turns the planes off when one is set."""
    for name, path in MODULES.items():
        if name.startswith("app.imaging"):
            assert "app.config" not in GRAPH[name], name
            assert not _reads_environment(ast.parse(path.read_text())) or name == "app.imaging.planar", name


def test_no_import_order_tricks():
    offenders = [name for name, path in MODULES.items() if "noqa: E402" in path.read_text()]
    assert offenders == []
