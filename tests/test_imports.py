"""The import map: every module imports, imports point down a layer, and none in a circle.

The graph is read from the sources (every `import` statement, also those inside functions and
under `if TYPE_CHECKING:`: a circle through a lazy import is still two modules that each need
the other). Layers, top to bottom (docs/architecture.md):

    pipelines.*                   the DAGs, the CLI, the runners, the job handles
    components.<component>        one lightweight KFP component per job (components/*.py), and
                                  the adapter they share (components.steps, components.fields)
    components.jobs.*             one Job per component; jobs import only jobs.base of their kind
    components.io|core|utils|demo the parts the jobs are made of (no circle among them)

A module may import its own layer or one below. A component module imports at its top level only
kfp, the standard library and `components.image`: its body imports the job, inside the step.

Inside `pipelines`, the sub-packages are ordered too, top to bottom (a module imports its own
sub-package or one after it; `pipelines.__main__` is the CLI's):

    cli       argparse: the commands
    jobs      job handles (futures), trainers and job predictors, the model manager
    local     the kfp.local runner, its console, warm interpreters, the background worker
    cluster   the KFP client, compilation, submitted runs, recurring runs
    checks    parameters and config files, every step's pre-run check (preflight)
    dags      the pipelines, their parameters' descriptions, their cluster settings
    common    the user-error type, the outcomes of a run

Run with `-s` to print the map.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import sys

import pytest

import components

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("components", "pipelines")
BOTTOM = ("io", "core", "utils", "demo")
LAYERS = ("parts (io, core, utils, demo)", "jobs", "components", "pipelines")
# pipelines' sub-packages, top to bottom: each imports only itself and those after it.
SUBPACKAGES = ("cli", "jobs", "local", "cluster", "checks", "dags", "common")
# Modules of the package itself, with the sub-package they belong with.
ROOT_MODULES = {"pipelines": "cli", "pipelines.__main__": "cli"}


def module_files() -> dict[str, pathlib.Path]:
    """Every module of the project's packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = module_files()


def layer(module: str) -> int:
    """The module's layer: 0 the parts, 1 the jobs, 2 the components, 3 the pipelines."""
    parts = module.split(".")
    if parts[0] == "pipelines":
        return 3
    if len(parts) > 1 and parts[1] in BOTTOM:
        return 0
    if len(parts) > 1 and parts[1] == "jobs":
        return 1
    return 2  # components/*.py and the package itself


def subpackage(module: str) -> str:
    """The sub-package of `pipelines` a module belongs to (`cli` for `pipelines.__main__`).

    Raises:
        ValueError: the module is in no sub-package of SUBPACKAGES.
    """
    if module in ROOT_MODULES:
        return ROOT_MODULES[module]
    parts = module.split(".")
    if parts[0] != "pipelines" or len(parts) < 2 or parts[1] not in SUBPACKAGES:
        raise ValueError(f"{module} is in none of pipelines' sub-packages {', '.join(SUBPACKAGES)}")
    return parts[1]


def upward_in_pipelines(graph: dict[str, dict[str, int]]) -> list[str]:
    """The imports between pipelines' sub-packages that point up SUBPACKAGES' order."""
    return [
        f"{module} ({subpackage(module)}) imports {target} ({subpackage(target)})"
        for module, targets in graph.items()
        if module.split(".")[0] == "pipelines"
        for target in targets
        if target.split(".")[0] == "pipelines"
        and SUBPACKAGES.index(subpackage(target)) < SUBPACKAGES.index(subpackage(module))
    ]


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The project modules an import statement names (a name from a package may be a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, *([node.module] if node.module else [])])
        names = [f"{base}.{alias.name}" for alias in node.names] + [base]
    found = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.append(name)
    return found


def imports(module: str, top_level_only: bool = False) -> dict[str, int]:
    """The project modules a module imports, with the line of the first import of each."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: dict[str, int] = {}
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _imported(module, node):
                # A package's module importing its own package (for a sibling) is no edge.
                if not module.startswith(name + "."):
                    found.setdefault(name, node.lineno)
    return found


GRAPH = {module: imports(module) for module in MODULES}


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for node in graph:
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return groups


def test_every_module_imports() -> None:
    for module in MODULES:
        if module.endswith("__main__"):
            continue  # runs the CLI: its `main` is imported by the CLI tests
        importlib.import_module(module)


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}, "e": {}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b": 1}, "b": {}}) == []


def test_no_module_imports_in_a_circle() -> None:
    found = circles(GRAPH)
    shown = [" <-> ".join(group) for group in found]
    assert found == [], "import circles: " + "; ".join(shown)


def test_imports_point_down_a_layer() -> None:
    upward = [
        f"{MODULES[module].relative_to(ROOT)}:{line} {module} ({LAYERS[layer(module)]}) imports "
        f"{target} ({LAYERS[layer(target)]})"
        for module, targets in GRAPH.items()
        for target, line in targets.items()
        if layer(target) > layer(module)
    ]
    assert upward == [], "\n".join(upward)


def test_every_pipelines_module_is_in_a_subpackage() -> None:
    """A new module goes in the sub-package of its concern, not beside them."""
    for module in MODULES:
        if module.split(".")[0] == "pipelines":
            subpackage(module)  # raises for a module outside the order


def test_the_direction_check_finds_upward_imports() -> None:
    graph = {
        "pipelines.cli.run": {"pipelines.local.runner": 1},
        "pipelines.local.runner": {"pipelines.dags.catalog": 1, "pipelines.jobs.futures": 2},
        "pipelines.dags.catalog": {"components": 1},
    }
    assert upward_in_pipelines(graph) == [
        "pipelines.local.runner (local) imports pipelines.jobs.futures (jobs)"
    ]


def test_pipelines_subpackages_import_one_way() -> None:
    """cli > jobs > local > cluster > checks > dags > common, lazy imports included."""
    upward = upward_in_pipelines(GRAPH)
    assert upward == [], "\n".join(upward)


def test_jobs_do_not_import_each_other() -> None:
    """What two jobs share lives in io/ or core/; `jobs.base` is every job's base class."""
    crossing = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if layer(module) == 1
        for target in targets
        if layer(target) == 1
        and target not in ("components.jobs", "components.jobs.base")
        and module != "components.jobs.base"
    ]
    assert crossing == []


# The modules that define components (not the adapter they share: components.steps, .fields).
COMPONENT_MODULES = sorted(set(components.COMPONENTS.values()))


@pytest.mark.parametrize("module", COMPONENT_MODULES)
def test_a_component_module_imports_only_kfp_at_its_top(module: str) -> None:
    """Compiling a pipeline imports every component: none may load MLflow, pandas or sklearn."""
    tree = ast.parse(MODULES[module].read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(
                node.module if node.module.startswith("components") else node.module.split(".")[0]
            )
    allowed = set(sys.stdlib_module_names) | {"kfp", "__future__", "components.image"}
    assert top <= allowed, f"{module} imports {sorted(top - allowed)} at its top level"


def test_the_map(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints, per layer, its modules and the imports between layers (see `-s`)."""
    edges = sum(len(targets) for targets in GRAPH.values())
    lines = [
        f"{len(MODULES)} modules, {edges} imports between them, no circle, none upward "
        "(between layers, and between pipelines' sub-packages)"
    ]
    for number in reversed(range(len(LAYERS))):
        members = [m for m in MODULES if layer(m) == number]
        below = sorted({LAYERS[layer(t)] for m in members for t in GRAPH[m] if layer(t) < number})
        lines.append(
            f"  {LAYERS[number]}: {len(members)} modules; imports from "
            f"{', '.join(below) or 'nothing below'}"
        )
    pipelines = [m for m in MODULES if layer(m) == 3]
    lines.append(f"  pipelines, top to bottom: {' > '.join(SUBPACKAGES)}")
    for name in SUBPACKAGES:
        members = [m for m in pipelines if subpackage(m) == name]
        after = sorted(
            {subpackage(t) for m in members for t in GRAPH[m] if layer(t) == 3} - {name},
            key=SUBPACKAGES.index,
        )
        lines.append(
            f"    {name}: {len(members)} modules; imports from "
            f"{', '.join(after) or 'no other sub-package'}"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert len(MODULES) > 50
